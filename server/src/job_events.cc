#include "tpdiff/server/job_events.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tpdiff/common/proto_time.h"

namespace tpdiff::server {

using tpdiff::v1::JobEvent;

TranslatedEvent TranslateWorkerEvent(JobEvent event, const JobRun& run, absl::Time now) {
  TranslatedEvent out;
  switch (event.kind_case()) {
    case JobEvent::kStarted:
      if (event.started().worker_id().empty()) {
        event.mutable_started()->set_worker_id(run.worker_id);
      }
      event.mutable_started()->set_attempt(run.attempt);
      out.action = WorkerEventAction::kAppend;
      break;
    case JobEvent::kProgress:
    case JobEvent::kResultChunk:
    case JobEvent::kStagePreview:
      out.action = WorkerEventAction::kAppend;
      break;
    case JobEvent::kCompleted: {
      tpdiff::v1::Timings* timings = event.mutable_completed()->mutable_timings();
      timings->set_queue_seconds(absl::ToDoubleSeconds(run.assigned_at - run.created_at));
      timings->set_total_seconds(absl::ToDoubleSeconds(now - run.created_at));
      out.action = WorkerEventAction::kFinish;
      break;
    }
    case JobEvent::kFailed:
      if (event.failed().code() == 0) {
        event.mutable_failed()->set_code(static_cast<int32_t>(absl::StatusCode::kInternal));
      }
      out.action = WorkerEventAction::kFinish;
      break;
    case JobEvent::kCancelled:
      // The front did not ask for it (that would have made the event stale): the worker gave
      // the job up, e.g. while shutting down, so another worker should run it.
      out.action = WorkerEventAction::kRequeue;
      break;
    default:
      out.action = WorkerEventAction::kIgnore;
      break;
  }
  out.event = std::move(event);
  return out;
}

absl::Status JobEventLog::Create(const std::string& job_id,
                                 const tpdiff::v1::GenerateRequest& request,
                                 const std::string& tenant, absl::Time now, size_t position) {
  tpdiff::v1::Job record;
  record.set_job_id(job_id);
  record.set_request_id(request.request_id());
  *record.mutable_request() = request;
  *record.mutable_created_at() =
      common::ToProtoTimestamp(now);
  record.set_attempt(1);
  if (absl::Status created = store_.Create(std::move(record), tenant); !created.ok()) {
    return created;
  }
  JobEvent queued;
  queued.mutable_queued()->set_position(static_cast<uint32_t>(position));
  store_.Append(job_id, std::move(queued)).IgnoreError();  // the job was just created
  return absl::OkStatus();
}

void JobEventLog::Requeued(const std::string& job_id, uint32_t attempt, const std::string& label,
                           const std::string& reason) {
  metrics_.Requeue(label);
  JobEvent requeued;
  requeued.mutable_requeued()->set_attempt(attempt);
  requeued.mutable_requeued()->set_reason(reason);
  store_.Append(job_id, std::move(requeued)).IgnoreError();  // queued jobs have not ended
}

absl::Status JobEventLog::Record(const std::string& job_id, JobRun& run, JobEvent event,
                                 absl::Time now) {
  if (event.has_stage_preview() && !run.preview_seen) {
    run.preview_seen = true;
    metrics_.TimeToFirstPreview(absl::ToDoubleSeconds(now - run.created_at));
  }
  if (event.has_completed()) {
    const tpdiff::v1::Timings& timings = event.completed().timings();
    metrics_.JobDuration(timings.total_seconds());
    for (int i = 0; i < timings.stage_seconds_size(); ++i) {
      metrics_.StageDuration(i + 1, timings.stage_seconds(i));
    }
    metrics_.FramesGenerated(run.num_frames);
  }
  if (IsTerminal(event)) return Finish(job_id, std::move(event));
  return store_.Append(job_id, std::move(event)).status();
}

absl::Status JobEventLog::Finish(const std::string& job_id, JobEvent event) {
  const char* outcome = event.has_completed() ? "completed"
                        : event.has_failed()  ? "failed"
                                              : "cancelled";
  absl::Status appended = store_.Append(job_id, std::move(event)).status();
  if (appended.ok()) metrics_.JobFinished(outcome);
  return appended;
}

JobEvent JobEventLog::Failed(absl::StatusCode code, const std::string& message, bool retryable) {
  JobEvent event;
  event.mutable_failed()->set_code(static_cast<int32_t>(code));
  event.mutable_failed()->set_message(message);
  event.mutable_failed()->set_retryable(retryable);
  return event;
}

JobEvent JobEventLog::Cancelled(const std::string& source) {
  JobEvent event;
  event.mutable_cancelled()->set_source(source);
  return event;
}

JobEvent JobEventLog::QueueDeadlinePassed(bool call_deadline, absl::Duration max_queue_wait) {
  if (call_deadline) return Cancelled("deadline");
  return Failed(absl::StatusCode::kDeadlineExceeded,
                absl::StrCat("max_queue_wait of ", absl::FormatDuration(max_queue_wait),
                             " passed before a worker was free"),
                /*retryable=*/true);
}

JobEvent JobEventLog::Unservable(const std::string& model, absl::Duration waited) {
  return Failed(absl::StatusCode::kFailedPrecondition,
                absl::StrFormat("model: no connected worker serves model \"%s\" (waited %ds)",
                                model, absl::ToInt64Seconds(waited)),
                /*retryable=*/false);
}

JobEvent JobEventLog::AttemptsExhausted(uint32_t attempts, const std::string& reason) {
  return Failed(absl::StatusCode::kUnavailable,
                absl::StrCat("job failed after ", attempts, " attempts; last: ", reason),
                /*retryable=*/true);
}

}  // namespace tpdiff::server
