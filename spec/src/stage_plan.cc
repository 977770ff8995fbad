#include "tpdiff/spec/stage_plan.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tpdiff::spec {

absl::StatusOr<StagePlan> StagePlan::Create(const NoiseSchedule& schedule,
                                            const StagePlanOptions& options) {
  const int K = options.num_stages;
  if (K < 1 || K > kMaxStages) {
    return absl::InvalidArgumentError(
        absl::StrCat("stages: ", K, " is outside the supported range 1..", kMaxStages));
  }
  const int T = options.num_frames;
  const int divisor = 1 << (K - 1);
  const bool causal = options.causal_first_frame;
  const int pooled = causal ? T - 1 : T;  // the frames pooled in pairs
  if (pooled < divisor || pooled % divisor != 0) {
    if (causal) {
      return absl::InvalidArgumentError(absl::StrCat(
          "num_frames: ", T, " must be 1 + N with N a positive multiple of 2^(stages-1) = ",
          divisor, " for ", K, " stages (causal first frame)"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "num_frames: ", T, " must be a positive multiple of 2^(stages-1) = ", divisor,
        " for ", K, " stages"));
  }
  if (static_cast<int>(options.steps_per_stage.size()) != K) {
    return absl::InvalidArgumentError(absl::StrCat("stage_steps: ", options.steps_per_stage.size(),
                                                   " values given, one per stage (", K,
                                                   ") required"));
  }
  for (size_t i = 0; i < options.steps_per_stage.size(); ++i) {
    const int n = options.steps_per_stage[i];
    if (n < 1 || n > kMaxStepsPerStage) {
      return absl::InvalidArgumentError(absl::StrCat("stage_steps[", i, "]: ", n,
                                                     " is outside 1..", kMaxStepsPerStage));
    }
  }
  std::vector<double> nominal;  // K + 1 values, 1 first, 0 last
  nominal.push_back(1.0);
  if (options.boundaries.empty()) {
    for (int i = 1; i < K; ++i) nominal.push_back(1.0 - static_cast<double>(i) / K);
  } else {
    if (static_cast<int>(options.boundaries.size()) != K - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("boundaries: ", options.boundaries.size(), " values given, ", K - 1,
                       " required for ", K, " stages"));
    }
    for (double b : options.boundaries) {
      if (!(b > 0.0 && b < 1.0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("boundaries: ", b, " is outside the open interval (0, 1)"));
      }
      if (!(b < nominal.back())) {
        return absl::InvalidArgumentError(
            absl::StrCat("boundaries: must be strictly decreasing (noisiest first), got [",
                         absl::StrJoin(options.boundaries, ", "), "]"));
      }
      nominal.push_back(b);
    }
  }
  nominal.push_back(0.0);

  std::vector<Stage> stages;
  for (int i = 0; i < K; ++i) {
    Stage s;
    s.k = K - i;
    s.frame_stride = 1 << (s.k - 1);
    s.causal_first_frame = causal;
    s.frames = (causal ? 1 : 0) + pooled / s.frame_stride;
    s.end = nominal[i + 1];
    s.start = i == 0 ? 1.0 : schedule.JumpStart(stages.back().end);
    s.steps = options.steps_per_stage[i];
    if (!(s.start > s.end)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "boundaries: stage ", s.k, " window is empty after the jump correction (start ",
          s.start, ", end ", s.end, ")"));
    }
    stages.push_back(s);
  }
  return StagePlan(schedule, T, std::move(stages));
}

absl::StatusOr<StagePlan> StagePlan::Vanilla(const NoiseSchedule& schedule, int num_frames,
                                             int total_steps, bool causal_first_frame) {
  StagePlanOptions options;
  options.causal_first_frame = causal_first_frame;
  options.num_frames = num_frames;
  options.num_stages = 1;
  options.steps_per_stage = {total_steps};
  return Create(schedule, options);
}

int StagePlan::total_steps() const {
  return std::accumulate(stages_.begin(), stages_.end(), 0,
                         [](int acc, const Stage& s) { return acc + s.steps; });
}

}  // namespace tpdiff::spec
