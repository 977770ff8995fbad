// The worker's /metrics endpoint, in a process that links LibTorch (where civetweb's
// prometheus::Exposer cannot start its threads; see metrics_server.h), over real sockets.
#include "tpdiff/worker/metrics_server.h"

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "prometheus/registry.h"
#include "raw_http.h"
#include "tpdiff/worker/metrics.h"
#include "tpdiff/worker/readiness.h"

namespace tpdiff::worker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using tpdiff::testing::RawHttpExchange;

std::string Get(int port, const std::string& path) {
  return RawHttpExchange(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics_.ObserveStep(2, 0.01);
    auto started = MetricsServer::Start("127.0.0.1:0", registry_);
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
    ASSERT_GT(server_->port(), 0);
  }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  WorkerMetrics metrics_{*registry_};
  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsServerTest, ServesTheRegistryInTheTextFormat) {
  const std::string response = Get(server_->port(), "/metrics");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(response, HasSubstr("# TYPE tpdiff_worker_step_seconds histogram"));
  EXPECT_THAT(response, HasSubstr("tpdiff_worker_step_seconds_count{stage=\"2\"} 1"));
  const size_t body = response.find("\r\n\r\n") + 4;
  EXPECT_THAT(response, HasSubstr("Content-Length: " + std::to_string(response.size() - body)));
}

TEST_F(MetricsServerTest, EachScrapeSeesTheCurrentValues) {
  metrics_.ObserveStep(2, 0.01);
  EXPECT_THAT(Get(server_->port(), "/metrics?x=1"),
              HasSubstr("tpdiff_worker_step_seconds_count{stage=\"2\"} 2"));
}

TEST_F(MetricsServerTest, HeadHasNoBody) {
  const std::string response =
      RawHttpExchange(server_->port(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(response.substr(response.find("\r\n\r\n") + 4), "");
}

TEST_F(MetricsServerTest, OtherPathsAndMethodsAreRefused) {
  EXPECT_THAT(Get(server_->port(), "/"), StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(RawHttpExchange(server_->port(), "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
              StartsWith("HTTP/1.1 405 "));
  EXPECT_THAT(RawHttpExchange(server_->port(), "garbage\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
  // Still serving after the refusals.
  EXPECT_THAT(Get(server_->port(), "/metrics"), StartsWith("HTTP/1.1 200 OK"));
}

TEST_F(MetricsServerTest, ABusyPortIsUnavailable) {
  auto second =
      MetricsServer::Start("127.0.0.1:" + std::to_string(server_->port()), registry_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}

TEST(MetricsServerAddressTest, MalformedAddressesAreInvalidArguments) {
  auto registry = std::make_shared<prometheus::Registry>();
  for (const std::string listen : {"", "localhost", "127.0.0.1:99999", "127.0.0.1:http",
                                   "::1:9090", "[::1]9090"}) {
    auto server = MetricsServer::Start(listen, registry);
    ASSERT_FALSE(server.ok()) << listen;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << listen;
    EXPECT_THAT(server.status().message(), HasSubstr("metrics-listen")) << listen;
  }
}

TEST(MetricsServerAddressTest, ABarePortListensOnEveryIpv4Address) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = MetricsServer::Start("0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT(Get((*server)->port(), "/metrics"), StartsWith("HTTP/1.1 200 OK"));
}

TEST(MetricsServerAddressTest, AGoneRegistryServesAnEmptyPage) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  registry.reset();
  const std::string response = Get((*server)->port(), "/metrics");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(response, Not(HasSubstr("tpdiff_")));
}

// The kubelet's probes: /startupz passes once the models are loaded, /readyz only once the
// worker is also registered with the front, and not while it drains.
TEST(MetricsServerProbesTest, StartupAndReadinessFollowTheWorkersState) {
  auto registry = std::make_shared<prometheus::Registry>();
  WorkerReadiness readiness;
  auto started = MetricsServer::Start("127.0.0.1:0", registry, &readiness);
  ASSERT_TRUE(started.ok()) << started.status();
  const int port = (*started)->port();

  EXPECT_THAT(Get(port, "/startupz"), StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(Get(port, "/startupz"), HasSubstr("loading models"));
  EXPECT_THAT(Get(port, "/readyz"), StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(Get(port, "/metrics"), StartsWith("HTTP/1.1 200 OK"));  // liveness meanwhile

  readiness.SetModelsLoaded();
  EXPECT_THAT(Get(port, "/startupz"), StartsWith("HTTP/1.1 200 OK"));
  const std::string unregistered = Get(port, "/readyz");
  EXPECT_THAT(unregistered, StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(unregistered, HasSubstr("not registered with the front"));

  readiness.SetRegistered(true);
  EXPECT_THAT(Get(port, "/readyz"), StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(Get(port, "/readyz?verbose=1"), StartsWith("HTTP/1.1 200 OK"));

  readiness.SetRegistered(false);
  EXPECT_THAT(Get(port, "/readyz"), StartsWith("HTTP/1.1 503 "));
  readiness.SetRegistered(true);
  readiness.SetDraining();
  EXPECT_THAT(Get(port, "/readyz"), HasSubstr("draining"));
  EXPECT_THAT(Get(port, "/startupz"), StartsWith("HTTP/1.1 200 OK"));
}

TEST_F(MetricsServerTest, WithoutReadinessTheProbePathsAreNotServed) {
  EXPECT_THAT(Get(server_->port(), "/readyz"), StartsWith("HTTP/1.1 404 "));
}

}  // namespace
}  // namespace tpdiff::worker
