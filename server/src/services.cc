#include "tpdiff/server/services.h"

#include <chrono>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/server/status.h"
#include "tpdiff/spec/limits.h"

namespace tpdiff::server {
namespace {

using tpdiff::v1::JobEvent;
using tpdiff::worker::v1::DispatchMessage;
using tpdiff::worker::v1::WorkerMessage;

absl::Time CallDeadline(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// Finish exactly once per stream; with a write in flight, Finish waits for OnWriteDone (the
// message must stay alive until then). Guarded by the owning reactor's mutex.
class FinishGate {
 public:
  bool finished() const { return finished_; }
  // Records the final status; true when the caller must call Finish(status()) now.
  bool Request(const grpc::Status& status, bool writing) {
    if (finished_) return false;
    finished_ = true;
    status_ = status;
    pending_ = writing;
    return !writing;
  }
  // From OnWriteDone: true when a deferred Finish(status()) is due now.
  bool TakePending() {
    const bool due = pending_;
    pending_ = false;
    return due;
  }
  const grpc::Status& status() const { return status_; }

 private:
  bool finished_ = false;
  bool pending_ = false;
  grpc::Status status_;
};

// A stream rejected before it started (validation, admission, unknown job).
class RejectedStream final : public grpc::ServerWriteReactor<JobEvent> {
 public:
  RejectedStream(ServerMetrics& metrics, const char* method, const grpc::Status& status) {
    metrics.Request(method, GrpcCodeName(status.error_code()));
    Finish(status);
  }
  void OnDone() override { delete this; }
};

// Streams one job's events after `after_seq` from the JobStore, following live events until
// the job ends. When `cancel_on_disconnect` (Generate), a client that goes away cancels the job.
class EventStream final : public grpc::ServerWriteReactor<JobEvent> {
 public:
  // `on_done` runs once when gRPC is done with the stream (it frees the tenant's stream slot).
  EventStream(Dispatcher& dispatcher, JobStore& store, ServerMetrics& metrics, const char* method,
              std::string job_id, int64_t after_seq, bool cancel_on_disconnect,
              std::function<void()> on_done)
      : dispatcher_(dispatcher),
        store_(store),
        metrics_(metrics),
        method_(method),
        job_id_(std::move(job_id)),
        cancel_on_disconnect_(cancel_on_disconnect),
        on_done_(std::move(on_done)),
        link_(std::make_shared<Link>(this)),
        after_seq_(after_seq) {
    metrics_.active_streams().Increment();
    absl::Status watched = store_.Watch(job_id_, link_);
    absl::MutexLock lock(&mu_);
    if (!watched.ok()) {
      FinishLocked(ToGrpcStatus(watched));
      return;
    }
    PumpLocked();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (ok) after_seq_ = in_flight_->seq();
      in_flight_.reset();  // the event stayed alive until now
      if (finish_.TakePending()) {
        Finish(finish_.status());
        return;
      }
      if (ok) {
        PumpLocked();
        return;
      }
    }
    ClientGone();
  }

  void OnCancel() override { ClientGone(); }

  void OnDone() override {
    {
      absl::MutexLock lock(&link_->mu);
      link_->stream = nullptr;
    }
    store_.Unwatch(job_id_, link_.get());
    metrics_.active_streams().Decrement();
    if (on_done_) on_done_();
    delete this;
  }

 private:
  // The store's handle on this stream; it may outlive the stream by a notification.
  struct Link final : JobWatcher {
    explicit Link(EventStream* s) : stream(s) {}
    void OnJobUpdated() override {
      absl::MutexLock lock(&mu);
      if (stream != nullptr) stream->Pump();
    }
    absl::Mutex mu;
    EventStream* stream ABSL_GUARDED_BY(mu);
  };

  void Pump() {
    absl::MutexLock lock(&mu_);
    PumpLocked();
  }

  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finish_.finished() || gone_) return;
    absl::StatusOr<EventRead> read = store_.Next(job_id_, after_seq_);
    if (!read.ok()) {
      // UNAVAILABLE (a shared store unreachable): the client resumes with after_seq.
      FinishLocked(absl::IsNotFound(read.status())
                       ? grpc::Status(grpc::StatusCode::NOT_FOUND,
                                      absl::StrCat("job ", job_id_, " was evicted from the job store"))
                       : ToGrpcStatus(read.status()));
      return;
    }
    if (read->event != nullptr) {
      writing_ = true;
      in_flight_ = std::move(read->event);
      StartWrite(in_flight_.get());
    } else if (read->finished) {
      FinishLocked(grpc::Status::OK);
    }
  }

  // A failed write and OnCancel take this one path.
  void ClientGone() {
    {
      absl::MutexLock lock(&mu_);
      if (gone_ || finish_.finished()) return;  // finished: the job had ended, nothing to cancel
      gone_ = true;
    }
    if (cancel_on_disconnect_) dispatcher_.Cancel(job_id_, "disconnect").IgnoreError();
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
  }

  // Finishes exactly once; with a write in flight, Finish waits for OnWriteDone.
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_.finished()) return;
    metrics_.Request(method_, GrpcCodeName(status.error_code()));
    if (finish_.Request(status, writing_)) Finish(status);
  }

  Dispatcher& dispatcher_;
  JobStore& store_;
  ServerMetrics& metrics_;
  const char* const method_;
  const std::string job_id_;
  const bool cancel_on_disconnect_;
  const std::function<void()> on_done_;
  const std::shared_ptr<Link> link_;

  absl::Mutex mu_;
  int64_t after_seq_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const JobEvent> in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  FinishGate finish_ ABSL_GUARDED_BY(mu_);
  bool gone_ ABSL_GUARDED_BY(mu_) = false;
};

// One worker's Connect stream: reads Hello then events and heartbeats, writes Welcome,
// Assign, Cancel and Drain in order with one write in flight.
class WorkerStream final
    : public grpc::ServerBidiReactor<WorkerMessage, DispatchMessage>,
      public WorkerChannel {
 public:
  explicit WorkerStream(Dispatcher& dispatcher) : dispatcher_(dispatcher) { StartRead(&in_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the worker closed its side or the stream broke
      Terminate(grpc::Status::OK, "stream closed");
      return;
    }
    if (connection_ == 0) {
      if (!in_.has_hello()) {
        Terminate(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                               "the first message on the stream must be hello"),
                  "no hello");
        return;
      }
      worker_id_ = in_.hello().worker_id();
      absl::StatusOr<uint64_t> connection = dispatcher_.ConnectWorker(in_.hello(), this);
      if (!connection.ok()) {
        Terminate(ToGrpcStatus(connection.status()), "bad hello");
        return;
      }
      connection_ = *connection;
    } else {
      dispatcher_.OnWorkerMessage(connection_, in_);
    }
    StartRead(&in_);
  }

  void Send(DispatchMessage message) override {
    absl::MutexLock lock(&mu_);
    if (finish_.finished()) return;
    out_.push_back(std::move(message));
    if (!writing_) {
      writing_ = true;
      StartWrite(&out_.front());
    }
  }

  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    FinishLocked(ToGrpcStatus(status));
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      out_.pop_front();  // the message stayed alive until now
      if (finish_.TakePending()) {
        Finish(finish_.status());
        return;
      }
      if (ok) {
        if (!out_.empty()) {
          writing_ = true;
          StartWrite(&out_.front());
        }
        return;
      }
    }
    Terminate(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to the worker failed"),
              "write failed");
  }

  void OnCancel() override { Terminate(grpc::Status::CANCELLED, "stream cancelled"); }

  void OnDone() override {
    // Re-queues the worker's jobs; after this the Dispatcher never touches `this`.
    if (connection_ != 0) {
      std::string reason;
      {
        absl::MutexLock lock(&mu_);  // nothing else runs by now, but reason_ is mu_'s
        reason = reason_;
      }
      dispatcher_.DisconnectWorker(
          connection_, absl::StrCat("worker ", worker_id_, " disconnected (", reason, ")"));
    }
    delete this;
  }

 private:
  // OnCancel, a failed write and the end of reads take this one path.
  void Terminate(const grpc::Status& status, const char* reason) {
    absl::MutexLock lock(&mu_);
    if (!finish_.finished()) reason_ = reason;
    FinishLocked(status);
  }

  // Finishes exactly once; with a write in flight, Finish waits for OnWriteDone.
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_.Request(status, writing_)) Finish(status);
  }

  Dispatcher& dispatcher_;
  WorkerMessage in_;              // only touched by the read path (one read at a time)
  uint64_t connection_ = 0;       // set by the first OnReadDone, read in OnDone
  std::string worker_id_;
  absl::Mutex mu_;
  std::deque<DispatchMessage> out_ ABSL_GUARDED_BY(mu_);  // front is in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  FinishGate finish_ ABSL_GUARDED_BY(mu_);
  std::string reason_ ABSL_GUARDED_BY(mu_) = "stream ended";
};

// A WorkerGateway caller that failed authentication: finished before reading anything.
class RejectedWorkerStream final : public grpc::ServerBidiReactor<WorkerMessage, DispatchMessage> {
 public:
  explicit RejectedWorkerStream(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

absl::string_view Metadata(const grpc::CallbackServerContext& context, const char* key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(key);
  if (it == metadata.end()) return {};
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

absl::StatusOr<Caller> VideoGenerationService::Admit(const grpc::CallbackServerContext& context) {
  // Auth off: the anonymous tenant, unlimited (TenantLimits' member defaults are the limits
  // of a configured tenant, not zeros; the load test hit max_queued_jobs 16 with --auth=none).
  if (tenants_ == nullptr) return Caller{"", TenantLimits{0, 0, 0, 0}};
  absl::StatusOr<Caller> caller = tenants_->Authenticate(Metadata(context, "authorization"));
  if (!caller.ok()) return caller.status();
  if (absl::Status admitted = tenants_->AdmitRequest(*caller); !admitted.ok()) return admitted;
  return caller;
}

absl::StatusOr<Caller> VideoGenerationService::AdmitForJob(
    const grpc::CallbackServerContext& context, const std::string& job_id) {
  absl::StatusOr<Caller> caller = Admit(context);
  if (!caller.ok()) return caller.status();
  if (job_id.empty()) return absl::InvalidArgumentError("job_id: required");
  if (job_id.size() > spec::kMaxJobIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("job_id: ", job_id.size(),
                                                   " bytes exceeds the maximum of ",
                                                   spec::kMaxJobIdBytes));
  }
  if (absl::Status owned = CheckAccess(store_, job_id, caller->tenant); !owned.ok()) return owned;
  return caller;
}

absl::Status VideoGenerationService::AcquireStream(const Caller& caller) {
  return tenants_ == nullptr ? absl::OkStatus() : tenants_->AcquireStream(caller);
}

grpc::ServerWriteReactor<JobEvent>* VideoGenerationService::OpenStream(
    const Caller& caller, const char* method, const std::string& job_id, int64_t after_seq,
    bool cancel_on_disconnect) {
  std::function<void()> release;
  if (tenants_ != nullptr) release = [tenants = tenants_, caller] { tenants->ReleaseStream(caller); };
  return new EventStream(dispatcher_, store_, metrics_, method, job_id, after_seq,
                         cancel_on_disconnect, std::move(release));
}

grpc::ServerWriteReactor<JobEvent>* VideoGenerationService::Generate(
    grpc::CallbackServerContext* context, const tpdiff::v1::GenerateRequest* request) {
  absl::StatusOr<Caller> caller = Admit(*context);
  if (!caller.ok()) return new RejectedStream(metrics_, "Generate", ToGrpcStatus(caller.status()));
  // The stream slot first: a job must not be queued for a stream that cannot be opened.
  if (absl::Status slot = AcquireStream(*caller); !slot.ok()) {
    return new RejectedStream(metrics_, "Generate", ToGrpcStatus(slot));
  }
  absl::StatusOr<Submission> submitted =
      dispatcher_.Submit(*request, CallDeadline(*context),
                         JobOwner{caller->tenant, caller->limits.max_queued_jobs});
  if (!submitted.ok()) {
    if (tenants_ != nullptr) tenants_->ReleaseStream(*caller);
    return new RejectedStream(metrics_, "Generate", ToGrpcStatus(submitted.status()));
  }
  return OpenStream(*caller, "Generate", submitted->job.job_id(), /*after_seq=*/0,
                    submitted->job.request().cancel_on_disconnect());
}

grpc::ServerWriteReactor<JobEvent>* VideoGenerationService::WatchJob(
    grpc::CallbackServerContext* context, const tpdiff::v1::WatchJobRequest* request) {
  if (request->after_seq() < 0) {
    return new RejectedStream(
        metrics_, "WatchJob",
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "after_seq: must not be negative"));
  }
  absl::StatusOr<Caller> caller = AdmitForJob(*context, request->job_id());
  if (!caller.ok()) return new RejectedStream(metrics_, "WatchJob", ToGrpcStatus(caller.status()));
  if (absl::Status slot = AcquireStream(*caller); !slot.ok()) {
    return new RejectedStream(metrics_, "WatchJob", ToGrpcStatus(slot));
  }
  return OpenStream(*caller, "WatchJob", request->job_id(), request->after_seq(),
                    /*cancel_on_disconnect=*/false);
}

grpc::ServerUnaryReactor* VideoGenerationService::FinishUnary(grpc::CallbackServerContext* context,
                                                              const char* method,
                                                              const absl::Status& status) {
  grpc::Status grpc_status = ToGrpcStatus(status);
  metrics_.Request(method, GrpcCodeName(grpc_status.error_code()));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc_status);
  return reactor;
}

grpc::ServerUnaryReactor* VideoGenerationService::SubmitJob(
    grpc::CallbackServerContext* context, const tpdiff::v1::GenerateRequest* request,
    tpdiff::v1::Job* response) {
  absl::StatusOr<Caller> caller = Admit(*context);
  if (!caller.ok()) return FinishUnary(context, "SubmitJob", caller.status());
  // The unary call's own deadline is for the submission, not the job: use max_queue_wait.
  absl::StatusOr<Submission> submitted =
      dispatcher_.Submit(*request, absl::InfiniteFuture(),
                         JobOwner{caller->tenant, caller->limits.max_queued_jobs});
  if (submitted.ok()) *response = std::move(submitted->job);
  return FinishUnary(context, "SubmitJob", submitted.status());
}

grpc::ServerUnaryReactor* VideoGenerationService::GetJob(grpc::CallbackServerContext* context,
                                                         const tpdiff::v1::GetJobRequest* request,
                                                         tpdiff::v1::Job* response) {
  absl::StatusOr<Caller> caller = AdmitForJob(*context, request->job_id());
  if (!caller.ok()) return FinishUnary(context, "GetJob", caller.status());
  absl::StatusOr<tpdiff::v1::Job> job = store_.Get(request->job_id());
  if (job.ok()) *response = *std::move(job);
  return FinishUnary(context, "GetJob", job.status());
}

grpc::ServerUnaryReactor* VideoGenerationService::CancelJob(
    grpc::CallbackServerContext* context, const tpdiff::v1::CancelJobRequest* request,
    tpdiff::v1::Job* response) {
  absl::StatusOr<Caller> caller = AdmitForJob(*context, request->job_id());
  if (!caller.ok()) return FinishUnary(context, "CancelJob", caller.status());
  absl::StatusOr<tpdiff::v1::Job> job = dispatcher_.Cancel(request->job_id(), "client");
  if (job.ok()) *response = *std::move(job);
  return FinishUnary(context, "CancelJob", job.status());
}

grpc::ServerUnaryReactor* VideoGenerationService::ListModels(
    grpc::CallbackServerContext* context, const tpdiff::v1::ListModelsRequest* /*request*/,
    tpdiff::v1::ListModelsResponse* response) {
  absl::StatusOr<Caller> caller = Admit(*context);
  if (!caller.ok()) return FinishUnary(context, "ListModels", caller.status());
  *response = dispatcher_.ListModels();
  return FinishUnary(context, "ListModels", absl::OkStatus());
}

grpc::ServerBidiReactor<WorkerMessage, DispatchMessage>* WorkerGatewayService::Connect(
    grpc::CallbackServerContext* context) {
  if (auth_ != nullptr) {
    if (absl::Status allowed = auth_->Check(*context); !allowed.ok()) {
      // Said here too: a worker rejected for a wrong secret or certificate retries for ever,
      // and the jobs it would run wait in the queue without another sign.
      std::cerr << "tpdiff-server: rejected a worker from " << context->peer() << ": " << allowed
                << "\n";
      return new RejectedWorkerStream(allowed);
    }
  }
  return new WorkerStream(dispatcher_);
}

}  // namespace tpdiff::server
