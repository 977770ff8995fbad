#include "tpdiff/server/front_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>

#include "absl/strings/str_cat.h"
#include "tpdiff/server/parse_errors.h"

namespace tpdiff::server {
namespace {

// Removes the builder plugins registered process-wide (the reflection plugin), so the
// health-only listener serves grpc.health.v1 and nothing else.
class NoPluginsOption : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

}  // namespace

FrontServer::FrontServer(FrontServerOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

FrontServer::~FrontServer() { Shutdown(absl::ZeroDuration()); }

absl::Status FrontServer::Start() {
  if (started_) return absl::FailedPreconditionError("already started");
  registry_ = std::make_shared<prometheus::Registry>();
  metrics_ = std::make_unique<ServerMetrics>(*registry_);
  models_ = std::make_unique<ModelRegistry>(options_.default_model);
  if (!options_.models_dir.empty()) {
    absl::StatusOr<std::vector<spec::ModelSpec>> models = ReadModelsDir(options_.models_dir);
    if (!models.ok()) return models.status();
    for (spec::ModelSpec& model : *models) models_->AddFromDisk(std::move(model));
  }
  std::unique_ptr<WorkQueue> queue;  // null: the Dispatcher's in-memory queue
  std::unique_ptr<TenantLimiter> limiter;  // null: in memory
  if (options_.redis.has_value()) {
    RedisStateOptions redis;
    redis.address = *options_.redis;
    redis.liveness_ttl = options_.dispatcher.lease_timeout;
    redis.queue_capacity = options_.dispatcher.queue_capacity;
    redis.aging_interval = options_.dispatcher.aging_interval;
    redis.job_ttl = options_.job_ttl;
    redis.job_store_bytes = options_.job_store_bytes;
    redis_ = std::make_unique<RedisState>(std::move(redis), clock_);
    store_ = redis_->MakeJobStore();
    queue = redis_->MakeWorkQueue();
    limiter = redis_->MakeTenantLimiter();
  } else {
    store_ = std::make_unique<InMemoryJobStore>(clock_, options_.job_ttl, options_.job_store_bytes);
  }
  dispatcher_ = std::make_unique<Dispatcher>(options_.dispatcher, clock_, *models_, *store_,
                                             *metrics_, std::move(queue));
  if (options_.tenants.has_value()) {
    tenants_ = std::make_unique<Tenants>(*options_.tenants, clock_, std::move(limiter));
  }
  worker_auth_ = std::make_unique<WorkerAuthenticator>(options_.worker_auth);
  api_service_ =
      std::make_unique<VideoGenerationService>(*dispatcher_, *store_, *metrics_, tenants_.get());
  gateway_service_ = std::make_unique<WorkerGatewayService>(*dispatcher_, worker_auth_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (options_.worker_auth.require_client_cert &&
      (!options_.tls.has_value() || options_.tls->client_ca_pem.empty())) {
    return absl::InvalidArgumentError("worker client certificates need TLS with a client CA");
  }
  builder.AddListeningPort(options_.listen, MakeServerCredentials(options_.tls), &port_);
  builder.RegisterService(api_service_.get());
  builder.RegisterService(gateway_service_.get());
  // A request that is not a parseable message gets INVALID_ARGUMENT, not gRPC's bare
  // UNIMPLEMENTED (parse_errors.h).
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeUnparsableRequestInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
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
  if (!options_.health_listen.empty()) {
    // A server of its own with no registered service: gRPC adds its default health
    // service (enabled above), which keeps its own statuses, mirrored by SetHealth.
    health_unimplemented_ = std::make_unique<grpc::CallbackGenericService>();
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(options_.health_listen, grpc::InsecureServerCredentials(),
                                    &health_port_);
    health_builder.SetOption(std::make_unique<NoPluginsOption>());
    // Without any service of its own gRPC refuses to build a server (no polled completion
    // queue); the stock generic callback service answers every other method UNIMPLEMENTED.
    health_builder.RegisterCallbackGenericService(health_unimplemented_.get());
    health_server_ = health_builder.BuildAndStart();
    if (health_server_ == nullptr || health_port_ == 0) {
      server_->Shutdown();
      return absl::UnavailableError(absl::StrCat("cannot serve health on ", options_.health_listen));
    }
  }
  SetHealth("", true);
  SetHealth(kReadinessService, false);

  if (!options_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen);
    } catch (const std::exception& e) {
      server_->Shutdown();
      if (health_server_) health_server_->Shutdown();
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
  SetHealth(kReadinessService, dispatcher_->Ready());
}

void FrontServer::SetHealth(const std::string& service, bool serving) {
  server_->GetHealthCheckService()->SetServingStatus(service, serving);
  if (health_server_) health_server_->GetHealthCheckService()->SetServingStatus(service, serving);
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
  if (health_server_) health_server_->GetHealthCheckService()->Shutdown();
  stop_ticker_.Notify();
  ticker_.join();
  // Watchers have their final event by now; give the streams a moment to flush it, then
  // cancel whatever is left (drained workers close their own streams).
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  // Last, so probes see NOT_SERVING (not a refused connection) until the end.
  if (health_server_) health_server_->Shutdown(std::chrono::system_clock::now());
  exposer_.reset();
}

}  // namespace tpdiff::server
