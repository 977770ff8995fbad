#ifndef TPDIFF_SERVER_SERVICES_H_
#define TPDIFF_SERVER_SERVICES_H_

#include <grpcpp/grpcpp.h>

#include "tpdiff/server/dispatcher.h"
#include "tpdiff/server/job_store.h"
#include "tpdiff/server/metrics.h"
#include "tpdiff/server/security.h"
#include "tpdiff/server/tenants.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"
#include "tpdiff/worker/v1/worker.grpc.pb.h"

namespace tpdiff::server {

// tpdiff.v1.VideoGeneration on the gRPC callback API. Streams (Generate, WatchJob) are
// ServerWriteReactors that pull events from the JobStore: one write in flight, the event kept
// alive until OnWriteDone, Finish once under the reactor's mutex; a client going away and a
// failed write take the same path. Reactions never block.
//
// Every call is authenticated first: with `tenants`, the "authorization: Bearer <key>"
// metadata names the caller's tenant (UNAUTHENTICATED otherwise) and takes a token from its
// rate limiter; jobs belong to their tenant, and another tenant's job is NOT_FOUND. Without
// `tenants` (--auth=none) every caller is the anonymous tenant "" with no per-tenant limits.
//
// Ownership: borrows the dispatcher, store, metrics and tenants (nullable), which must
// outlive the grpc::Server. Thread safety: gRPC calls it from many threads; all state is in
// the borrowed objects.
class VideoGenerationService final : public tpdiff::v1::VideoGeneration::CallbackService {
 public:
  VideoGenerationService(Dispatcher& dispatcher, JobStore& store, ServerMetrics& metrics,
                         Tenants* tenants = nullptr)
      : dispatcher_(dispatcher), store_(store), metrics_(metrics), tenants_(tenants) {}

  grpc::ServerWriteReactor<tpdiff::v1::JobEvent>* Generate(
      grpc::CallbackServerContext* context, const tpdiff::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const tpdiff::v1::GenerateRequest* request,
                                      tpdiff::v1::Job* response) override;
  grpc::ServerWriteReactor<tpdiff::v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* context, const tpdiff::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const tpdiff::v1::GetJobRequest* request,
                                   tpdiff::v1::Job* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const tpdiff::v1::CancelJobRequest* request,
                                      tpdiff::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const tpdiff::v1::ListModelsRequest* request,
                                       tpdiff::v1::ListModelsResponse* response) override;

 private:
  grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context, const char* method,
                                        const absl::Status& status);
  // Authenticates the call and applies the tenant's rate limit.
  absl::StatusOr<Caller> Admit(const grpc::CallbackServerContext& context);
  // Admit, plus the caller's ownership of `job_id`.
  absl::StatusOr<Caller> AdmitForJob(const grpc::CallbackServerContext& context,
                                     const std::string& job_id);
  // Reserves one of the caller's stream slots, or returns the reason it cannot.
  absl::Status AcquireStream(const Caller& caller);
  // Streams `job_id` to the caller, holding the stream slot reserved by AcquireStream.
  grpc::ServerWriteReactor<tpdiff::v1::JobEvent>* OpenStream(const Caller& caller,
                                                             const char* method,
                                                             const std::string& job_id,
                                                             int64_t after_seq,
                                                             bool cancel_on_disconnect);

  Dispatcher& dispatcher_;
  JobStore& store_;
  ServerMetrics& metrics_;
  Tenants* const tenants_;
};

// tpdiff.worker.v1.WorkerGateway: one ServerBidiReactor per worker stream, which is the
// worker's WorkerChannel for the Dispatcher (see dispatcher.h for the protocol).
//
// A caller that `auth` rejects gets UNAUTHENTICATED before it can say Hello, so it never
// registers and is never assigned a job.
//
// Ownership and thread safety as VideoGenerationService; `auth` (nullable = accept every
// caller) is borrowed too.
class WorkerGatewayService final : public tpdiff::worker::v1::WorkerGateway::CallbackService {
 public:
  explicit WorkerGatewayService(Dispatcher& dispatcher, const WorkerAuthenticator* auth = nullptr)
      : dispatcher_(dispatcher), auth_(auth) {}

  grpc::ServerBidiReactor<tpdiff::worker::v1::WorkerMessage, tpdiff::worker::v1::DispatchMessage>*
  Connect(grpc::CallbackServerContext* context) override;

 private:
  Dispatcher& dispatcher_;
  const WorkerAuthenticator* const auth_;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_SERVICES_H_
