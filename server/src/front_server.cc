#include "tpdiff/server/front_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"

namespace tpdiff::server {

FrontServer::FrontServer(FrontServerOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

FrontServer::~FrontServer() { Shutdown(absl::ZeroDuration()); }

absl::Status FrontServer::Start() {
  if (started_) return absl::FailedPreconditionError("already started");
  registry_ = std::make_shared<prometheus::Registry>();
  metrics_ = std::make_unique<ServerMetrics>(*registry_);
  models_ = std::make_unique<ModelRegistry>(options_.default_model);
  if (!options_.models_dir.empty()) {
    absl::StatusOr<std::vector<tpdiff::v1::ModelInfo>> models = ReadModelsDir(options_.models_dir);
    if (!models.ok()) return models.status();
    for (tpdiff::v1::ModelInfo& info : *models) models_->AddFromDisk(std::move(info));
  }
  store_ = std::make_unique<InMemoryJobStore>(clock_, options_.job_ttl, options_.job_store_bytes);
  dispatcher_ = std::make_unique<Dispatcher>(options_.dispatcher, clock_, *models_, *store_, *metrics_);
  api_service_ = std::make_unique<VideoGenerationService>(*dispatcher_, *store_, *metrics_);
  gateway_service_ = std::make_unique<WorkerGatewayService>(*dispatcher_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(api_service_.get());
  builder.RegisterService(gateway_service_.get());
  builder.SetMaxReceiveMessageSize(options_.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_send_message_bytes);
  // Generate and worker streams last minutes with long silences while a stage samples:
  // ping idle connections to notice dead peers, and let clients and workers ping us.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  }
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kReadinessService, false);

  if (!options_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen);
    } catch (const std::exception& e) {
      server_->Shutdown();
      return absl::UnavailableError(
          absl::StrCat("cannot serve /metrics on ", options_.metrics_listen, ": ", e.what()));
    }
    exposer_->RegisterCollectable(registry_);
    metrics_port_ = exposer_->GetListeningPorts().empty() ? 0 : exposer_->GetListeningPorts()[0];
  }
  started_ = true;
  ticker_ = std::thread([this] { TickLoop(); });
  return absl::OkStatus();
}

void FrontServer::TickLoop() {
  bool stopping = false;
  while (!stopping) {
    dispatcher_->Tick();
    UpdateHealth();
    stopping = stop_ticker_.WaitForNotificationWithTimeout(options_.tick_interval);
  }
}

void FrontServer::UpdateHealth() {
  // After HealthCheckServiceInterface::Shutdown every service stays NOT_SERVING.
  server_->GetHealthCheckService()->SetServingStatus(kReadinessService, dispatcher_->Ready());
}

void FrontServer::Drain() {
  if (!started_) return;
  dispatcher_->StopAdmitting();
  UpdateHealth();
}

void FrontServer::Shutdown(absl::Duration grace) {
  if (!started_ || stopped_) return;
  stopped_ = true;
  Drain();
  dispatcher_->CancelQueued("shutdown");
  dispatcher_->DrainWorkers();
  if (!dispatcher_->WaitUntilNoRunningJobs(grace)) dispatcher_->CancelAll("shutdown");
  server_->GetHealthCheckService()->Shutdown();
  stop_ticker_.Notify();
  ticker_.join();
  // Watchers have their final event by now; give the streams a moment to flush it, then
  // cancel whatever is left (drained workers close their own streams).
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  exposer_.reset();
}

}  // namespace tpdiff::server
