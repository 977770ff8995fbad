#ifndef TPDIFF_SPEC_STAGE_PLAN_H_
#define TPDIFF_SPEC_STAGE_PLAN_H_

#include <vector>

#include "absl/status/statusor.h"
#include "tpdiff/spec/schedule.h"

namespace tpdiff::spec {

// One stage of the temporal pyramid. Stage numbers follow the method note: stage K is the
// noisiest and runs at 1/2^(K-1) of the frame rate, stage 1 runs at full frame rate.
struct Stage {
  int k = 1;             // K .. 1
  int frames = 0;        // T_k = T / 2^(k-1); causal first frame: 1 + (T - 1) / 2^(k-1)
  int frame_stride = 1;  // 2^(k-1): full-rate frames one stage frame stands for
  double start = 1.0;    // s_k (noisier end of the window; corrected for k < K)
  double end = 0.0;      // e_k
  int steps = 1;         // solver steps inside the window
  // Frame 0 stands alone at every stage (latents of a causal video VAE): pooling, the jump
  // and the previews treat it apart from the pairs (temporal_ops.h in tpdiff::core).
  bool causal_first_frame = false;

  // The frames that are pooled in pairs: T_k, or T_k - 1 with a causal first frame.
  int pooled_frames() const { return causal_first_frame ? frames - 1 : frames; }
};

struct StagePlanOptions {
  int num_frames = 16;               // T at full frame rate (latent frames for latent packages)
  // T = 1 + N: frame 0 is kept at every stage and N must be divisible by 2^(K-1).
  bool causal_first_frame = false;
  int num_stages = 3;                // K in [1, kMaxStages]
  std::vector<int> steps_per_stage;  // one per stage, noisiest first (stage K .. 1)
  // Nominal boundaries between stages, noisiest first: K - 1 values strictly decreasing
  // inside (0, 1). Empty = uniform (K = 3: 2/3, 1/3).
  std::vector<double> boundaries;
};

// A validated stage plan. Immutable.
class StagePlan {
 public:
  static constexpr int kMaxStages = 5;
  static constexpr int kMaxStepsPerStage = 1000;

  // Rejects, with a message naming the problem: K outside [1, 5], T (T - 1 with a causal
  // first frame) not a positive multiple of 2^(K-1), a steps list of the wrong length or with a value outside [1, 1000], boundaries
  // of the wrong count, out of order or outside (0, 1), and windows that the jump
  // correction would make empty.
  static absl::StatusOr<StagePlan> Create(const NoiseSchedule& schedule,
                                          const StagePlanOptions& options);

  // The plan with K = 1 and the same total number of steps: TPDiff's vanilla baseline.
  static absl::StatusOr<StagePlan> Vanilla(const NoiseSchedule& schedule, int num_frames,
                                           int total_steps, bool causal_first_frame = false);

  const NoiseSchedule& schedule() const { return schedule_; }
  int num_frames() const { return num_frames_; }
  bool causal_first_frame() const { return stages_.front().causal_first_frame; }
  int num_stages() const { return static_cast<int>(stages_.size()); }
  int total_steps() const;
  // Stages in sampling order: stage K first, stage 1 last.
  const std::vector<Stage>& stages() const { return stages_; }
  // The stage with number k (1..K).
  const Stage& stage(int k) const { return stages_[stages_.size() - k]; }

 private:
  StagePlan(NoiseSchedule schedule, int num_frames, std::vector<Stage> stages)
      : schedule_(schedule), num_frames_(num_frames), stages_(std::move(stages)) {}

  NoiseSchedule schedule_;
  int num_frames_;
  std::vector<Stage> stages_;
};

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_STAGE_PLAN_H_
