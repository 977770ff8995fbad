#ifndef TPDIFF_CORE_TRAINING_H_
#define TPDIFF_CORE_TRAINING_H_

// Stage-wise diffusion training targets (method note, section 4).

#include <torch/types.h>

#include <string>
#include <vector>

#include "tpdiff/core/stage_plan.h"

namespace tpdiff::core {

struct TrainingBatch {
  int stage = 1;         // stage number k shared by the whole batch (frame counts differ by stage)
  torch::Tensor x_t;     // [B, C, T_k, H, W]
  torch::Tensor t;       // [B] float, global time inside the stage window
  torch::Tensor stage_ids;  // [B] int64, all equal to `stage`
  torch::Tensor target;  // [B, C, T_k, H, W]: velocity (FM) or eps_k (VP)
};

struct TrainingDrawOptions {
  bool align_noise = true;  // data-noise alignment by minimum-cost assignment
  int stage = 0;            // 0 = draw a stage from 1..K (see stage_weights); else force this stage
  // Relative probability of drawing each stage 1..K when `stage` is 0; empty = uniform.
  // Weighting the noisiest stage K (fewest frames, cheapest step) buys more updates of the
  // coarse layout and motion per second of training.
  std::vector<double> stage_weights;
  // Generator on x0's device for the noise; null = draw it from the CPU generator and copy.
  // On a GPU, CPU draws of a large batch's noise cost more than the training step itself.
  torch::Generator* noise_generator = nullptr;
};

// Why `weights` cannot weight `num_stages` stages (TrainingDrawOptions::stage_weights: one
// finite weight >= 0 per stage, not all zero), or "" when they can.
std::string StageWeightsError(const std::vector<double>& weights, int num_stages);

// Draws a stage, times and noise for clean full-rate videos x0 [B, C, T, H, W] and builds
// x_t and its target. Stage and times come from `generator` (CPU), the noise from
// options.noise_generator when given, else from `generator`; tensors stay on x0's device.
TrainingBatch DrawTrainingBatch(const StagePlan& plan, const torch::Tensor& x0,
                                torch::Generator& generator,
                                const TrainingDrawOptions& options = {});

// The same for given stage, times [B] and noise [B, C, T_k, H, W] (no alignment): the
// deterministic core of DrawTrainingBatch, exposed for tests.
TrainingBatch BuildTrainingBatch(const StagePlan& plan, int stage, const torch::Tensor& x0,
                                 const torch::Tensor& t, const torch::Tensor& eps);

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_TRAINING_H_
