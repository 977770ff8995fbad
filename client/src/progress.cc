#include "tpdiff/client/progress.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tpdiff::client {

namespace api = ::tpdiff::v1;

void ProgressTracker::Observe(const api::JobEvent& event, absl::Time now) {
  last_ = now;
  switch (event.kind_case()) {
    case api::JobEvent::kQueued:
      queue_position_ = event.queued().position();
      state_ = "queued";
      break;
    case api::JobEvent::kStarted:
      started_ = true;
      have_progress_ = false;
      attempt_ = event.started().attempt();
      running_since_ = now;
      state_ = "running";
      break;
    case api::JobEvent::kProgress:
      progress_ = event.progress();
      have_progress_ = true;
      if (running_since_ == absl::InfinitePast()) running_since_ = now;
      state_ = "running";
      break;
    case api::JobEvent::kStagePreview:
      break;
    case api::JobEvent::kResultChunk:
      state_ = "receiving";
      break;
    case api::JobEvent::kCompleted:
      state_ = "completed";
      break;
    case api::JobEvent::kFailed:
      state_ = "failed";
      break;
    case api::JobEvent::kCancelled:
      state_ = "cancelled";
      break;
    case api::JobEvent::kRequeued:
      // Another worker starts from scratch.
      state_ = "requeued";
      have_progress_ = false;
      running_since_ = absl::InfinitePast();
      queue_position_.reset();
      break;
    default:
      break;
  }
}

// Work of the first `steps_done` steps of 1-based `stage` and all stages before it, in
// frame-steps. Stage i of K runs at frames / 2^(K - i).
double ProgressTracker::Work(uint32_t stage, uint32_t steps_done) const {
  const uint32_t k = progress_.stage_count();
  const double full_frames =
      static_cast<double>(progress_.frames()) * std::ldexp(1.0, k - progress_.stage());
  double work = 0;
  for (uint32_t i = 1; i <= stage && i <= k; ++i) {
    const double frames = full_frames / std::ldexp(1.0, k - i);
    uint32_t steps = i <= stage_steps_.size() ? stage_steps_[i - 1] : progress_.steps_in_stage();
    if (i == progress_.stage()) steps = progress_.steps_in_stage();
    work += frames * (i == stage ? steps_done : steps);
  }
  return work;
}

double ProgressTracker::TotalWork() const {
  const uint32_t k = progress_.stage_count();
  if (k == 0) return 0;
  // All stages complete: the last stage's own step count.
  const uint32_t last_steps = k <= stage_steps_.size() && k != progress_.stage()
                                  ? stage_steps_[k - 1]
                                  : progress_.steps_in_stage();
  return Work(k, last_steps);
}

double ProgressTracker::Fraction() const {
  if (state_ == "completed" || state_ == "receiving") return 1.0;
  if (!have_progress_) return 0.0;
  const double total = TotalWork();
  if (total <= 0) return 0.0;
  return std::clamp(Work(progress_.stage(), progress_.step()) / total, 0.0, 1.0);
}

std::optional<absl::Duration> ProgressTracker::Eta() const {
  const double f = Fraction();
  if (!have_progress_ || f <= 0 || running_since_ == absl::InfinitePast()) return std::nullopt;
  const double elapsed = absl::ToDoubleSeconds(last_ - running_since_);
  return absl::Seconds(elapsed * (1 - f) / f);
}

std::string ProgressTracker::Line() const {
  if (state_.empty()) return "submitting";
  if (state_ == "queued") {
    return queue_position_.has_value() ? absl::StrCat("queued, position ", *queue_position_)
                                       : "queued";
  }
  if (state_ == "requeued") return absl::StrCat("requeued (worker lost), attempt ", attempt_ + 1);
  constexpr int kWidth = 24;
  const double f = Fraction();
  const int filled = static_cast<int>(std::round(f * kWidth));
  std::string line = absl::StrCat("[", std::string(filled, '#'), std::string(kWidth - filled, '.'),
                                  "] ", absl::StrFormat("%3.0f%%", f * 100));
  if (have_progress_) {
    absl::StrAppend(&line, " stage ", progress_.stage(), "/", progress_.stage_count(), " step ",
                    progress_.step(), "/", progress_.steps_in_stage(), " (", progress_.frames(),
                    " frames)");
  }
  if (state_ == "running") {
    std::optional<absl::Duration> eta = Eta();
    if (eta.has_value()) {
      absl::StrAppend(&line, absl::StrFormat(" ETA %.1fs", absl::ToDoubleSeconds(*eta)));
    }
  } else {
    absl::StrAppend(&line, " ", state_);
  }
  return line;
}

std::string FormatTimings(const api::Timings& t, const std::vector<uint32_t>& stage_frames) {
  std::string out;
  const int k = t.stage_seconds_size();
  for (int i = 0; i < k; ++i) {
    absl::StrAppend(&out, absl::StrFormat("stage %d/%d: %.3f s", i + 1, k, t.stage_seconds(i)));
    if (i < static_cast<int>(stage_frames.size()) && stage_frames[i] > 0) {
      absl::StrAppend(&out, " (", stage_frames[i], " frames)");
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, absl::StrFormat("queue: %.3f s, encode: %.3f s, total: %.3f s\n",
                                        t.queue_seconds(), t.encode_seconds(), t.total_seconds()));
  return out;
}

}  // namespace tpdiff::client
