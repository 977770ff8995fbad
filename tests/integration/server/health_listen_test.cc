// FrontServerOptions::health_listen (tpdiff-server --health-listen): a plaintext listener
// for probes that cannot do TLS (Kubernetes' native gRPC probes) next to a TLS front. It must
// report exactly the main port's health statuses and serve nothing else: no API, no worker
// gateway, no reflection. Real gRPC on 127.0.0.1 (port 0), certificates made at test time.
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "certs_suite.h"
#include "test_worker.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

namespace tpdiff::server {
namespace {

using grpc::health::v1::HealthCheckResponse;
using testing::TestWorker;

constexpr char kSecret[] = "worker-secret-0123456789abcdef";

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

class HealthListenTest : public tpdiff::testing::CertsSuite {
 protected:

  // The production shape: TLS, a worker secret, API keys on; health on a second port.
  FrontServerOptions TlsOptions(const std::string& health_listen) {
    FrontServerOptions options;
    options.listen = "127.0.0.1:0";
    options.health_listen = health_listen;
    options.tick_interval = absl::Milliseconds(20);
    options.tls = ServerTls{tpdiff::testing::ReadTestFile(certs_->server_cert),
                            tpdiff::testing::ReadTestFile(certs_->server_key), ""};
    options.worker_auth.secret = kSecret;
    options.tenants = std::vector<TenantConfig>{};
    return options;
  }

  void TearDown() override {
    worker_.reset();
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }

  static grpc::Status Check(const std::shared_ptr<grpc::Channel>& channel,
                            const std::string& service, HealthCheckResponse::ServingStatus* out) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    grpc::Status status = grpc::health::v1::Health::NewStub(channel)->Check(&context, request, &response);
    *out = response.status();
    return status;
  }

  // The status on the health port, UNKNOWN when the call fails.
  HealthCheckResponse::ServingStatus HealthPort(const std::string& service) {
    HealthCheckResponse::ServingStatus status = HealthCheckResponse::UNKNOWN;
    if (!Check(health_channel_, service, &status).ok()) return HealthCheckResponse::UNKNOWN;
    return status;
  }

  // Opens the reflection stream and closes it at once: a server with reflection answers OK.
  static grpc::Status ReflectionCall(const std::shared_ptr<grpc::Channel>& channel) {
    grpc::GenericStub stub(channel);
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(
        &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    void* tag = nullptr;
    bool ok = false;
    call->StartCall(reinterpret_cast<void*>(1));
    cq.Next(&tag, &ok);
    call->WritesDone(reinterpret_cast<void*>(2));
    cq.Next(&tag, &ok);
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(3));
    cq.Next(&tag, &ok);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return status;
  }

  RealClock clock_;
  std::unique_ptr<FrontServer> server_;
  std::shared_ptr<grpc::Channel> health_channel_;
  std::unique_ptr<TestWorker> worker_;
};

TEST_F(HealthListenTest, PlaintextPortMirrorsTheTlsFrontsHealthAndServesNothingElse) {
  server_ = std::make_unique<FrontServer>(TlsOptions("127.0.0.1:0"), clock_);
  ASSERT_TRUE(server_->Start().ok());
  ASSERT_NE(server_->health_port(), 0);
  ASSERT_NE(server_->health_port(), server_->port());
  const std::string main_target = "127.0.0.1:" + std::to_string(server_->port());
  health_channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->health_port()),
                                        grpc::InsecureChannelCredentials());

  EXPECT_EQ(HealthPort(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(HealthPort(kReadinessService), HealthCheckResponse::NOT_SERVING) << "no worker yet";
  // The main port stays TLS-only: a plaintext probe there cannot even connect.
  HealthCheckResponse::ServingStatus ignored;
  EXPECT_FALSE(
      Check(grpc::CreateChannel(main_target, grpc::InsecureChannelCredentials()), "", &ignored).ok());

  // Nothing but health on the plaintext port.
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  tpdiff::v1::ListModelsResponse models;
  EXPECT_EQ(tpdiff::v1::VideoGeneration::NewStub(health_channel_)
                ->ListModels(&context, {}, &models)
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(ReflectionCall(health_channel_).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  // ...while the TLS port does serve reflection (the call above would have reached it).
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = tpdiff::testing::ReadTestFile(certs_->ca_cert);
  std::shared_ptr<grpc::Channel> tls = grpc::CreateChannel(main_target, grpc::SslCredentials(ssl));
  EXPECT_TRUE(ReflectionCall(tls).ok());

  // Readiness follows the dispatcher on both ports: a worker makes it SERVING...
  grpc::ClientContext ready_context;
  ready_context.set_deadline(Deadline());
  grpc::health::v1::HealthCheckRequest ready_request;
  ready_request.set_service(kReadinessService);
  auto ready = grpc::health::v1::Health::NewStub(health_channel_)->Watch(&ready_context, ready_request);
  worker_ = std::make_unique<TestWorker>(tls, "w1", /*auto_run=*/true, kSecret);
  ASSERT_TRUE(worker_->Connect());
  HealthCheckResponse ready_update;
  bool became_ready = false;
  while (!became_ready && ready->Read(&ready_update)) {
    became_ready = ready_update.status() == HealthCheckResponse::SERVING;
  }
  EXPECT_TRUE(became_ready) << "the health port never reported readiness";
  ready_context.TryCancel();
  ready->Finish();
  HealthCheckResponse::ServingStatus on_tls = HealthCheckResponse::UNKNOWN;
  ASSERT_TRUE(Check(tls, kReadinessService, &on_tls).ok());
  EXPECT_EQ(on_tls, HealthCheckResponse::SERVING);

  // ...and draining makes it NOT_SERVING at once, while liveness stays SERVING.
  server_->Drain();
  EXPECT_EQ(HealthPort(kReadinessService), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(HealthPort(""), HealthCheckResponse::SERVING);

  // Across shutdown a watcher on the health port sees liveness go NOT_SERVING.
  grpc::ClientContext watch_context;
  grpc::health::v1::HealthCheckRequest watch_request;
  auto watch = grpc::health::v1::Health::NewStub(health_channel_)->Watch(&watch_context, watch_request);
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  std::thread shutdown([&] { server_->Shutdown(absl::Seconds(5)); });
  bool saw_not_serving = false;
  while (watch->Read(&update)) {
    if (update.status() == HealthCheckResponse::NOT_SERVING) {
      saw_not_serving = true;
      watch_context.TryCancel();
    }
  }
  watch->Finish();
  shutdown.join();
  EXPECT_TRUE(saw_not_serving);
}

TEST_F(HealthListenTest, IsOffByDefault) {
  server_ = std::make_unique<FrontServer>(TlsOptions(""), clock_);
  ASSERT_TRUE(server_->Start().ok());
  EXPECT_EQ(server_->health_port(), 0);
}

TEST_F(HealthListenTest, AnAddressThatCannotBeBoundFailsStart) {
  // 203.0.113.1 (TEST-NET-3) is no local address, so bind fails (gRPC sets SO_REUSEPORT, so
  // a port held by another listener would not).
  FrontServer server(TlsOptions("203.0.113.1:0"), clock_);
  absl::Status started = server.Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable) << started;
  EXPECT_NE(started.message().find("cannot serve health on 203.0.113.1:0"), std::string::npos)
      << started;
}

}  // namespace
}  // namespace tpdiff::server
