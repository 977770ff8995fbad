#ifndef TPDIFF_TESTS_LOAD_JOB_CLIENT_H_
#define TPDIFF_TESTS_LOAD_JOB_CLIENT_H_

// What the load and scale-out tests do as clients of the real front: small requests for the
// tiny model, a Generate or WatchJob stream read to its end with what it saw counted, and a
// job's state.

#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

namespace tpdiff::load {

namespace api = ::tpdiff::v1;

inline api::GenerateRequest SmallRequest(uint32_t steps = 1) {
  api::GenerateRequest r;
  r.set_model("tiny");
  r.set_prompt("a red circle moving left");
  r.set_num_frames(8);
  r.add_stage_steps(steps);
  r.add_stage_steps(steps);
  return r;
}

// What one Generate stream saw.
struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  std::string job_id;
  int events = 0;
  int queued = 0, completed = 0, failed = 0, cancelled = 0, requeued = 0;
  bool gapless = true;
  std::vector<std::string> workers;  // Started{worker_id}, in order
  std::string cancel_source;
  absl::Duration latency;

  bool terminal() const { return completed + failed + cancelled > 0; }
};

inline void Record(const api::JobEvent& e, Outcome& out) {
  ++out.events;
  if (out.job_id.empty()) out.job_id = e.job_id();
  if (e.seq() != out.events || e.job_id() != out.job_id) out.gapless = false;
  out.queued += e.has_queued();
  out.completed += e.has_completed();
  out.failed += e.has_failed();
  out.cancelled += e.has_cancelled();
  out.requeued += e.has_requeued();
  if (e.has_started()) out.workers.push_back(e.started().worker_id());
  if (e.has_cancelled()) out.cancel_source = e.cancelled().source();
}

// Reads a Generate stream to its end. `on_event` may pause (a slow reader) or return false
// to drop the connection (a client going away).
template <typename OnEvent>
Outcome Generate(api::VideoGeneration::Stub& stub, const api::GenerateRequest& request,
                 absl::Duration deadline, OnEvent on_event) {
  const absl::Time start = absl::Now();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(start + deadline));
  // Hundreds of channels connecting at once can see a transient connect failure on a busy
  // machine (CI once got UNAVAILABLE "failed to connect" on loopback); a real client waits for
  // the channel rather than failing the call. Server rejections are still visible: they are
  // statuses on an established stream, which wait_for_ready does not retry.
  context.set_wait_for_ready(true);
  std::unique_ptr<grpc::ClientReader<api::JobEvent>> reader = stub.Generate(&context, request);
  Outcome out;
  api::JobEvent e;
  while (reader->Read(&e)) {
    Record(e, out);
    if (!on_event(e)) {
      context.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  out.code = status.error_code();
  out.message = status.error_message();
  out.latency = absl::Now() - start;
  return out;
}

inline Outcome Generate(api::VideoGeneration::Stub& stub, const api::GenerateRequest& request,
                        absl::Duration deadline = absl::Seconds(100)) {
  return Generate(stub, request, deadline, [](const api::JobEvent&) { return true; });
}

// Every event of a job from its log (WatchJob from seq 0), to count terminal events after
// the fact.
inline Outcome WatchAll(api::VideoGeneration::Stub& stub, const std::string& job_id) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  api::WatchJobRequest w;
  w.set_job_id(job_id);
  auto reader = stub.WatchJob(&context, w);
  Outcome out;
  api::JobEvent e;
  while (reader->Read(&e)) Record(e, out);
  out.code = reader->Finish().error_code();
  return out;
}

inline api::JobState GetState(api::VideoGeneration::Stub& stub, const std::string& job_id) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  api::GetJobRequest request;
  request.set_job_id(job_id);
  api::Job job;
  if (!stub.GetJob(&context, request, &job).ok()) return api::JOB_STATE_UNSPECIFIED;
  return job.state();
}

inline bool Finished(api::JobState state) {
  return state == api::JOB_STATE_COMPLETED || state == api::JOB_STATE_FAILED ||
         state == api::JOB_STATE_CANCELLED;
}

}  // namespace tpdiff::load

#endif  // TPDIFF_TESTS_LOAD_JOB_CLIENT_H_
