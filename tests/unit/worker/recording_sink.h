#ifndef TPDIFF_TESTS_UNIT_WORKER_RECORDING_SINK_H_
#define TPDIFF_TESTS_UNIT_WORKER_RECORDING_SINK_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/worker/event_sink.h"

namespace tpdiff::worker::testing {

inline bool IsTerminal(const tpdiff::v1::JobEvent& e) {
  return e.has_completed() || e.has_failed() || e.has_cancelled();
}

// Records every event; tests wait on conditions over the record, never on time.
class RecordingSink : public EventSink {
 public:
  // Called on the emitting thread, before the event is recorded, outside the lock; a test
  // can block a job at a chosen event with it.
  std::function<void(const tpdiff::worker::v1::WorkerEvent&)> on_emit;

  void Emit(tpdiff::worker::v1::WorkerEvent event) override {
    if (on_emit) on_emit(event);
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }

  // Waits (up to a generous bound, so a bug fails instead of hanging) for the job's
  // terminal event and returns the job's events.
  std::vector<tpdiff::v1::JobEvent> WaitForEnd(const std::string& job_id,
                                               absl::Duration timeout = absl::Seconds(120)) {
    absl::MutexLock lock(&mu_);
    auto ended = [&] {
      mu_.AssertHeld();  // Await calls it with mu_ held; the analysis cannot see that
      for (const auto& e : events_) {
        if (e.job_id() == job_id && IsTerminal(e.event())) return true;
      }
      return false;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ended), timeout);
    return EventsLocked(job_id);
  }

  std::vector<tpdiff::v1::JobEvent> Events(const std::string& job_id) {
    absl::MutexLock lock(&mu_);
    return EventsLocked(job_id);
  }

  std::vector<tpdiff::worker::v1::WorkerEvent> All() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  std::vector<tpdiff::v1::JobEvent> EventsLocked(const std::string& job_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<tpdiff::v1::JobEvent> out;
    for (const auto& e : events_) {
      if (e.job_id() == job_id) out.push_back(e.event());
    }
    return out;
  }

  absl::Mutex mu_;
  std::vector<tpdiff::worker::v1::WorkerEvent> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tpdiff::worker::testing

#endif  // TPDIFF_TESTS_UNIT_WORKER_RECORDING_SINK_H_
