#include "tpdiff/train/train_command.h"

#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "tpdiff/train/train_flags.h"
#include "tpdiff/train/trainer.h"

// tpdiff-train's flags live here rather than in train/train_main.cc so that the main stays
// wiring only; only binaries that call RunTrainCommand link (and so list) them.
ABSL_FLAG(std::string, mode, "tpdiff",
          "tpdiff (stage-wise temporal pyramid) or vanilla (full frame rate, one stage)");
ABSL_FLAG(int, stages, 3, "number of pyramid stages K (tpdiff mode)");
ABSL_FLAG(bool, no_align, false, "disable data-noise alignment");
ABSL_FLAG(std::string, stage_weights, "",
          "tpdiff mode: relative probability of training each stage 1..K, comma-separated "
          "(stage K is the noisiest, lowest frame rate); empty = uniform");
ABSL_FLAG(int64_t, iters, 0, "stop after this many steps in total (0 = no limit)");
ABSL_FLAG(double, minutes, 0, "stop after this many training minutes in total (0 = no limit)");
ABSL_FLAG(int64_t, stop_at_step, 0,
          "pause at this step (checkpoint + package) without changing the schedule; continue with "
          "--resume");
ABSL_FLAG(int, batch, 16, "clips per step");
ABSL_FLAG(double, lr, 5e-4, "peak learning rate (AdamW)");
ABSL_FLAG(int64_t, warmup, 200, "linear warmup steps");
ABSL_FLAG(double, min_lr_fraction, 0.1, "cosine schedule floor, as a fraction of --lr");
ABSL_FLAG(double, weight_decay, 0.01, "AdamW decoupled weight decay");
ABSL_FLAG(double, ema, 0.999, "EMA decay of the packaged weights");
ABSL_FLAG(double, cond_dropout, 0.1,
          "probability of training a clip with the empty caption (guidance)");
ABSL_FLAG(uint64_t, seed, 0, "seed for initialisation, data and noise");
ABSL_FLAG(int64_t, checkpoint_every, 0,
          "write checkpoint + package every N steps (0 = only at the end)");
ABSL_FLAG(bool, resume, false, "continue from <out>/checkpoint if it exists");
ABSL_FLAG(std::string, init_from, "",
          "warm start from this model package's weights (parameters it lacks keep their "
          "initialisation; fresh optimizer and schedule); ignored when --resume finds a checkpoint");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda[:N]");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 = all cores)");
ABSL_FLAG(int, render_threads, 1, "data-rendering threads");
ABSL_FLAG(int, prefetch, 4, "rendered batches kept ready");
ABSL_FLAG(std::string, out, "models/tpdiff-shapes", "output package folder");
ABSL_FLAG(std::string, name, "tpdiff-shapes", "package name");
ABSL_FLAG(std::string, preset, "cpu", "network preset: tiny, cpu or gpu");
ABSL_FLAG(int, width, 0, "override: token width");
ABSL_FLAG(int, depth, 0, "override: number of blocks");
ABSL_FLAG(int, heads, 0, "override: attention heads");
ABSL_FLAG(int, patch, 0, "override: patch size (2, 4, 8)");
ABSL_FLAG(int, text_width, 0, "override: caption encoder width");
ABSL_FLAG(int, text_layers, -1, "override: caption encoder layers");
ABSL_FLAG(int, refine_channels, -1, "override: pixel refinement channels (0 = none)");
ABSL_FLAG(int, word_conditioning, -1, "override: 1 = per-word conditioning vectors, 0 = none");
ABSL_FLAG(int, word_layout_frames, -1,
          "override: per-word space-time layout prior over this many frames (0 = none)");
ABSL_FLAG(int, frames, 16, "clip frames");
ABSL_FLAG(double, progress_interval, 1.0, "seconds between progress lines");
ABSL_FLAG(bool, bench, false,
          "measure cost (params, FLOPs, forward and per-stage step time) and exit");
ABSL_FLAG(int, bench_repeats, 3, "timed repeats per measurement with --bench");

namespace tpdiff::train {

int RunTrainCommand(std::ostream& out, std::ostream& err) {
  TrainOptions o;
  absl::StatusOr<TrainMode> mode = ParseTrainMode(absl::GetFlag(FLAGS_mode));
  absl::StatusOr<std::vector<double>> weights = ParseStageWeights(absl::GetFlag(FLAGS_stage_weights));
  absl::StatusOr<model::NetworkConfig> network = NetworkFromFlags(
      {absl::GetFlag(FLAGS_preset), absl::GetFlag(FLAGS_width), absl::GetFlag(FLAGS_depth),
       absl::GetFlag(FLAGS_heads), absl::GetFlag(FLAGS_patch), absl::GetFlag(FLAGS_text_width),
       absl::GetFlag(FLAGS_text_layers), absl::GetFlag(FLAGS_refine_channels),
       absl::GetFlag(FLAGS_word_conditioning), absl::GetFlag(FLAGS_word_layout_frames)});
  for (const absl::Status& parsed : {mode.status(), weights.status(), network.status()}) {
    if (!parsed.ok()) {
      err << "tpdiff-train: " << parsed.message() << "\n";
      return 2;
    }
  }
  o.mode = *mode;
  o.stage_weights = *weights;
  o.network = *network;
  o.stages = absl::GetFlag(FLAGS_stages);
  o.align_noise = !absl::GetFlag(FLAGS_no_align);
  o.iters = absl::GetFlag(FLAGS_iters);
  o.minutes = absl::GetFlag(FLAGS_minutes);
  o.stop_at_step = absl::GetFlag(FLAGS_stop_at_step);
  o.batch = absl::GetFlag(FLAGS_batch);
  o.lr = absl::GetFlag(FLAGS_lr);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.min_lr_fraction = absl::GetFlag(FLAGS_min_lr_fraction);
  o.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  o.ema_decay = absl::GetFlag(FLAGS_ema);
  o.cond_dropout = absl::GetFlag(FLAGS_cond_dropout);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.checkpoint_every = absl::GetFlag(FLAGS_checkpoint_every);
  o.resume = absl::GetFlag(FLAGS_resume);
  o.init_from = absl::GetFlag(FLAGS_init_from);
  o.device = absl::GetFlag(FLAGS_device);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.render_threads = absl::GetFlag(FLAGS_render_threads);
  o.prefetch = absl::GetFlag(FLAGS_prefetch);
  o.out_dir = absl::GetFlag(FLAGS_out);
  o.name = absl::GetFlag(FLAGS_name);
  o.clip.frames = absl::GetFlag(FLAGS_frames);
  o.progress_interval_s = absl::GetFlag(FLAGS_progress_interval);
  const absl::Status status =
      absl::GetFlag(FLAGS_bench)
          ? MeasureCosts(o, absl::GetFlag(FLAGS_bench_repeats), out)
          : RunTraining(o, &err);
  if (!status.ok()) {
    err << "tpdiff-train: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace tpdiff::train
