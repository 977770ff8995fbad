#ifndef TPDIFF_TRAIN_TRAINER_H_
#define TPDIFF_TRAIN_TRAINER_H_

// Stage-wise flow-matching training of the built-in network (method note, section 4) on the
// procedural captioned clips, with data-noise alignment, EMA weights, condition dropout for
// classifier-free guidance, checkpoint/resume, and a model package as output.

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tpdiff/model/network.h"
#include "tpdiff/train/synthetic_data.h"

namespace tpdiff::train {

enum class TrainMode {
  kTpdiff,   // stages drawn from 1..K (uniformly unless stage_weights) at their own frame rates
  kVanilla,  // the same network trained at full frame rate as a single stage (K = 1)
};

struct TrainOptions {
  TrainMode mode = TrainMode::kTpdiff;
  int stages = 3;           // K (tpdiff mode)
  bool align_noise = true;  // data-noise alignment
  // Tpdiff mode: relative probability of training each stage 1..K (stage K is the noisiest
  // and lowest frame rate); empty = uniform. May change between resumed runs.
  std::vector<double> stage_weights;
  int64_t iters = 0;        // stop after this many steps (0 = no step limit)
  double minutes = 0;       // stop after this much training time (0 = no time limit)
  // Pause at this step (writing checkpoint + package) without changing the schedule, which
  // still spans --iters / --minutes; continue later with resume. 0 = off.
  int64_t stop_at_step = 0;
  int batch = 16;
  double lr = 5e-4;              // peak learning rate
  int64_t warmup = 200;          // linear warmup steps
  double min_lr_fraction = 0.1;  // cosine decays to lr * min_lr_fraction
  double weight_decay = 0.01;
  double grad_clip = 1.0;  // global L2 norm; 0 = off
  double ema_decay = 0.999;
  double cond_dropout = 0.1;  // probability a caption is replaced by the empty one
  uint64_t seed = 0;
  int64_t checkpoint_every = 0;                  // steps; 0 = only at the end
  bool resume = false;                           // continue from <out_dir>/checkpoint if present
  // Warm start (when not resuming a checkpoint): initial weights from this package's
  // weights file; parameters the package lacks keep their (zero) initialisation, and the
  // optimizer, step count and schedule start fresh. Empty = random initialisation.
  std::string init_from;
  std::string device = "cpu";                    // "cpu" | "cuda" (| "cuda:N")
  int threads = 0;                               // intra-op threads; 0 = hardware concurrency
  int render_threads = 1;                        // data-rendering threads (off the training thread)
  int prefetch = 4;                              // rendered batches kept ready
  std::string out_dir = "models/tpdiff-shapes";  // package folder (and checkpoint/ inside)
  std::string name = "tpdiff-shapes";            // package name
  model::NetworkConfig network;
  train::ClipSpec clip;
  double progress_interval_s = 1.0;
};

// The seed of the data batch for `step` (the prefetcher renders RenderClipBatch(spec, batch,
// DataSeed(seed, step))).
uint64_t DataSeed(uint64_t seed, int64_t step);

// Peak-relative learning-rate factor: linear warmup over `warmup` steps, then a cosine from 1
// down to min_fraction as `progress` goes from 0 to 1 (progress = the larger of the step and
// time fractions of the budget, so a --minutes run decays on schedule too).
double LearningRateFactor(int64_t step, int64_t warmup, double progress, double min_fraction);

// AdamW (decoupled weight decay) written out on tensor ops, so its state is plain named
// tensors that checkpoint to safetensors identically under every LibTorch version.
// Not thread-safe; owned by the training loop.
class AdamW {
 public:
  struct Param {
    std::string name;
    torch::Tensor param;
    bool decay;  // weight decay applies (matrices, not biases/norms/positions)
  };
  AdamW(std::vector<Param> params, double beta1 = 0.9, double beta2 = 0.99, double eps = 1e-8);
  void Step(double lr, double weight_decay);
  int64_t steps() const { return steps_; }
  model::NamedTensors State(const std::string& prefix) const;  // m, v per parameter
  absl::Status LoadState(const std::map<std::string, torch::Tensor>& tensors,
                         const std::string& prefix, int64_t steps);

 private:
  std::vector<Param> params_;
  std::vector<torch::Tensor> m_, v_;
  double beta1_, beta2_, eps_;
  int64_t steps_ = 0;
};

// Renders training batches on background threads into a small bounded queue. Batch for step s
// is rendered with a seed derived from (seed, s), so a resumed run sees the same data.
// Next() is called from one thread (the training loop); the destructor stops the workers.
class ClipPrefetcher {
 public:
  ClipPrefetcher(train::ClipSpec spec, int batch, uint64_t seed, int64_t first_step, int threads,
                 int capacity);
  ~ClipPrefetcher();
  ClipPrefetcher(const ClipPrefetcher&) = delete;
  ClipPrefetcher& operator=(const ClipPrefetcher&) = delete;
  // Blocks until the batch of the next step is ready.
  train::ClipBatch Next();
  // Seconds the consumer spent waiting for data (a sign the renderer is the bottleneck).
  double wait_seconds() const { return wait_seconds_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  double wait_seconds_ = 0;
};

// Runs a training job to completion (or until the time/step budget), writing the package to
// options.out_dir (EMA weights) at every checkpoint and at the end, a CSV log
// (<out_dir>/train_log.csv: step,loss,seconds,stage,lr,clips) and progress lines to
// `progress` (may be null). INVALID_ARGUMENT for bad options naming the flag.
absl::Status RunTraining(const TrainOptions& options, std::ostream* progress);

// Cost measurement for choosing a config (prints a report to `out`): parameters, FLOPs per
// clip, forward time for a guided batch of 2 at full frame rate, and the training step time
// per stage at options.batch.
absl::Status MeasureCosts(const TrainOptions& options, int repeats, std::ostream& out);

}  // namespace tpdiff::train

#endif  // TPDIFF_TRAIN_TRAINER_H_
