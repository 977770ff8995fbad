#ifndef TPDIFF_CLIENT_PROGRESS_H_
#define TPDIFF_CLIENT_PROGRESS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::client {

// Follows a job's events and renders one status line: queue position, stage k/K, step,
// percent and ETA. The ETA weighs each step by its stage's frame count (a step at full frame
// rate costs about 2^(K-1) times one of the noisiest stage) and extrapolates from the time
// the job has been running. Time is passed in, so tests drive it.
//
// Not thread-safe; one per job.
class ProgressTracker {
 public:
  // `stage_steps`: the request's steps per stage if known; stages it does not cover are
  // assumed to take as many steps as the current one.
  explicit ProgressTracker(std::vector<uint32_t> stage_steps = {})
      : stage_steps_(std::move(stage_steps)) {}

  void Observe(const tpdiff::v1::JobEvent& event, absl::Time now);

  // The status line (no newline, no escape codes).
  std::string Line() const;
  // Fraction of the sampling work done, in [0, 1].
  double Fraction() const;
  // Remaining sampling time, once a step has been seen.
  std::optional<absl::Duration> Eta() const;

 private:
  double Work(uint32_t stage, uint32_t steps_done) const;
  double TotalWork() const;

  std::vector<uint32_t> stage_steps_;
  std::optional<uint32_t> queue_position_;
  bool started_ = false;
  std::string state_;  // "queued", "running", "encoding", "completed", ...
  uint32_t attempt_ = 1;
  tpdiff::v1::Progress progress_;
  bool have_progress_ = false;
  absl::Time running_since_ = absl::InfinitePast();
  absl::Time last_ = absl::InfinitePast();
};

// "stage 1/3: 0.52 s (4 frames)" lines, queue, encode and total, for the end of a job.
// `stage_frames`: each stage's frames in sampling order, as its progress events reported them
// (a latent model's stages do not halve the pixel frames exactly); missing ones are left out.
std::string FormatTimings(const tpdiff::v1::Timings& timings,
                          const std::vector<uint32_t>& stage_frames);

}  // namespace tpdiff::client

#endif  // TPDIFF_CLIENT_PROGRESS_H_
