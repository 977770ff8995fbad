#ifndef TPDIFF_SERVER_SERVICES_H_
#define TPDIFF_SERVER_SERVICES_H_

#include <grpcpp/grpcpp.h>

#include "tpdiff/server/dispatcher.h"
#include "tpdiff/server/job_store.h"
#include "tpdiff/server/metrics.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"
#include "tpdiff/worker/v1/worker.grpc.pb.h"

namespace tpdiff::server {

// tpdiff.v1.VideoGeneration on the gRPC callback API. Streams (Generate, WatchJob) are
// ServerWriteReactors that pull events from the JobStore: one write in flight, the event kept
// alive until OnWriteDone, Finish once under the reactor's mutex; a client going away and a
// failed write take the same path. Reactions never block.
//
// Ownership: borrows the dispatcher, store and metrics, which must outlive the grpc::Server.
// Thread safety: gRPC calls it from many threads; all state is in the borrowed objects.
class VideoGenerationService final : public tpdiff::v1::VideoGeneration::CallbackService {
 public:
  VideoGenerationService(Dispatcher& dispatcher, JobStore& store, ServerMetrics& metrics)
      : dispatcher_(dispatcher), store_(store), metrics_(metrics) {}

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

  Dispatcher& dispatcher_;
  JobStore& store_;
  ServerMetrics& metrics_;
};

// tpdiff.worker.v1.WorkerGateway: one ServerBidiReactor per worker stream, which is the
// worker's WorkerChannel for the Dispatcher (see dispatcher.h for the protocol).
//
// Ownership and thread safety as VideoGenerationService.
class WorkerGatewayService final : public tpdiff::worker::v1::WorkerGateway::CallbackService {
 public:
  explicit WorkerGatewayService(Dispatcher& dispatcher) : dispatcher_(dispatcher) {}

  grpc::ServerBidiReactor<tpdiff::worker::v1::WorkerMessage, tpdiff::worker::v1::DispatchMessage>*
  Connect(grpc::CallbackServerContext* context) override;

 private:
  Dispatcher& dispatcher_;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_SERVICES_H_
