#include "tpdiff/worker/gateway_client.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "tiny_package.h"
#include "tpdiff/common/clock.h"
#include "tpdiff/common/worker_secret.h"
#include "tpdiff/worker/job_runner.h"
#include "tpdiff/worker/models.h"
#include "tpdiff/worker/readiness.h"
#include "tpdiff/worker/v1/worker.grpc.pb.h"

namespace tpdiff::worker {
namespace {

namespace api = ::tpdiff::v1;
namespace wv1 = ::tpdiff::worker::v1;

constexpr absl::Duration kWait = absl::Seconds(120);  // a bound for bugs, not a sleep
// Time is a FakeClock: heartbeats and reconnects happen only when a test advances it.
constexpr absl::Duration kHeartbeat = absl::Minutes(1);
constexpr absl::Duration kMaxBackoff = absl::Milliseconds(100);  // below kHeartbeat

// A front's WorkerGateway reduced to a recorder: it welcomes each stream, records what the
// worker sends and lets the test push dispatch messages or drop the stream.
class FakeGateway final : public wv1::WorkerGateway::Service {
 public:
  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<wv1::DispatchMessage, wv1::WorkerMessage>* stream) override {
    wv1::WorkerMessage hello;
    if (!stream->Read(&hello)) return grpc::Status::OK;
    wv1::DispatchMessage welcome;
    welcome.mutable_welcome()->mutable_heartbeat_interval()->set_seconds(30);
    welcome.mutable_welcome()->mutable_lease_timeout()->set_seconds(90);
    {
      absl::MutexLock lock(&mu_);
      hellos_.push_back(hello.hello());
      stream->Write(welcome);
      stream_ = stream;
      context_ = context;
    }
    wv1::WorkerMessage msg;
    while (stream->Read(&msg)) {
      absl::MutexLock lock(&mu_);
      received_.push_back(msg);
    }
    absl::MutexLock lock(&mu_);
    // A reconnect may have installed the next stream already.
    if (stream_ == stream) {
      stream_ = nullptr;
      context_ = nullptr;
    }
    ++ended_;
    return grpc::Status::OK;
  }

  bool Send(const wv1::DispatchMessage& msg) {
    absl::MutexLock lock(&mu_);
    return stream_ != nullptr && stream_->Write(msg);
  }
  void DropStream() {
    absl::MutexLock lock(&mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  // Waits until pred(received, hellos, ended) holds; false after kWait.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    absl::MutexLock lock(&mu_);
    auto cond = [&] {
      mu_.AssertHeld();  // Await calls it with mu_ held; the analysis cannot see that
      return pred(received_, hellos_, ended_);
    };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), kWait);
  }
  std::vector<api::JobEvent> JobEvents(const std::string& job_id) {
    absl::MutexLock lock(&mu_);
    std::vector<api::JobEvent> out;
    for (const auto& m : received_) {
      if (m.has_event() && m.event().job_id() == job_id) out.push_back(m.event().event());
    }
    return out;
  }
  std::vector<wv1::Hello> hellos() {
    absl::MutexLock lock(&mu_);
    return hellos_;
  }
  int heartbeats() {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& m : received_) n += m.has_heartbeat() ? 1 : 0;
    return n;
  }

 private:
  absl::Mutex mu_;
  grpc::ServerReaderWriter<wv1::DispatchMessage, wv1::WorkerMessage>* stream_ ABSL_GUARDED_BY(mu_) =
      nullptr;
  grpc::ServerContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<wv1::Hello> hellos_ ABSL_GUARDED_BY(mu_);
  std::vector<wv1::WorkerMessage> received_ ABSL_GUARDED_BY(mu_);
  int ended_ ABSL_GUARDED_BY(mu_) = 0;
};

bool JobEnded(const std::vector<wv1::WorkerMessage>& received, const std::string& id) {
  for (const auto& m : received) {
    if (m.has_event() && m.event().job_id() == id) {
      const auto& e = m.event().event();
      if (e.has_completed() || e.has_failed() || e.has_cancelled()) return true;
    }
  }
  return false;
}

class GatewayClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::WriteTinyPackage("tiny");
    ASSERT_TRUE(dir.ok()) << dir.status();
    models_dir_ = *dir;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&gateway_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);

    auto models = LoadModels(models_dir_, {"tiny"}, torch::kCPU, nullptr);
    ASSERT_TRUE(models.ok()) << models.status();
    GatewayClientOptions options;
    options.server_address = "127.0.0.1:" + std::to_string(port);
    options.worker_id = "worker-a";
    options.device = "cpu";
    options.version = "test";
    options.slots = 1;
    options.models.push_back(ToModelInfo(*models->at("tiny")));
    options.backoff.initial = absl::Milliseconds(10);
    options.backoff.max = kMaxBackoff;
    options.heartbeat_interval = kHeartbeat;
    options.readiness = &readiness_;
    readiness_.SetModelsLoaded();  // as RunWorkerProcess does before dialling
    client_ = std::make_unique<GatewayClient>(options, clock_);
    JobRunnerOptions runner_options;
    runner_options.worker_id = "worker-a";
    runner_ =
        std::make_unique<JobRunner>(*std::move(models), /*slots=*/1, *client_, runner_options);
    run_ = std::thread([this] { run_status_ = client_->Run(*runner_); });
  }

  void TearDown() override {
    if (client_ != nullptr) client_->Shutdown();
    if (run_.joinable()) run_.join();
    if (runner_ != nullptr) runner_->Shutdown();
    if (server_ != nullptr) server_->Shutdown();
    std::filesystem::remove_all(models_dir_);
  }

  static wv1::DispatchMessage AssignMsg(const std::string& id, uint32_t steps_per_stage) {
    wv1::DispatchMessage msg;
    wv1::Assign* a = msg.mutable_assign();
    a->set_job_id(id);
    a->set_attempt(2);
    a->mutable_request()->set_model("tiny");
    a->mutable_request()->set_prompt("a blue square moving up");
    a->mutable_request()->set_seed(5);
    for (int i = 0; i < 3; ++i) a->mutable_request()->add_stage_steps(steps_per_stage);
    return msg;
  }

  bool WaitWelcomed(int n) {
    return gateway_.WaitFor([&](auto&, auto& hellos, int) {
      return static_cast<int>(hellos.size()) >= n && client_->welcomes() >= n;
    });
  }

  // Waits until the worker sent any job event for which (event.*has)() holds.
  bool WaitForEvent(bool (api::JobEvent::*has)() const) {
    return gateway_.WaitFor([has](auto& received, auto&, int) {
      for (const auto& m : received) {
        if (m.has_event() && (m.event().event().*has)()) return true;
      }
      return false;
    });
  }

  bool WaitHeartbeats(int n) {
    return gateway_.WaitFor([n](auto& received, auto&, int) {
      int seen = 0;
      for (const auto& m : received) seen += m.has_heartbeat() ? 1 : 0;
      return seen >= n;
    });
  }

  std::string models_dir_;
  common::FakeClock clock_;      // outlives client_
  WorkerReadiness readiness_;    // outlives client_
  FakeGateway gateway_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GatewayClient> client_;
  std::unique_ptr<JobRunner> runner_;
  std::thread run_;
  absl::Status run_status_;
};

TEST_F(GatewayClientTest, SaysHelloSendsHeartbeatsAndStreamsAJobsEvents) {
  ASSERT_TRUE(WaitWelcomed(1));
  const wv1::Hello hello = gateway_.hellos().front();
  EXPECT_EQ(hello.worker_id(), "worker-a");
  EXPECT_EQ(hello.device(), "cpu");
  EXPECT_EQ(hello.slots(), 1u);
  EXPECT_THAT(hello.models(), ::testing::ElementsAre("tiny"));
  ASSERT_EQ(hello.model_info_size(), 1);
  EXPECT_EQ(hello.model_info(0).frames(), 16u);
  EXPECT_GT(hello.model_info(0).vocabulary_size(), 10);

  ASSERT_TRUE(gateway_.WaitFor([](auto& received, auto&, int) {
    for (const auto& m : received) {
      if (m.has_heartbeat() && m.heartbeat().free_slots() == 1) return true;
    }
    return false;
  }));
  ASSERT_TRUE(gateway_.Send(AssignMsg("j1", 1)));
  ASSERT_TRUE(gateway_.WaitFor([](auto& r, auto&, int) { return JobEnded(r, "j1"); }));
  const auto events = gateway_.JobEvents("j1");
  ASSERT_GE(events.size(), 3u);
  EXPECT_TRUE(events.front().has_started());
  EXPECT_TRUE(events.back().has_completed()) << events.back().DebugString();
  EXPECT_TRUE(events[events.size() - 2].has_result_chunk());
  EXPECT_TRUE(events[events.size() - 2].result_chunk().last());
}

TEST_F(GatewayClientTest, HeartbeatsFollowTheClockNotTheTrafficOrTheWallClock) {
  ASSERT_TRUE(WaitWelcomed(1));
  ASSERT_TRUE(WaitHeartbeats(1));  // the first one at once, reporting the free slot
  clock_.Advance(kHeartbeat - absl::Milliseconds(1));
  // A whole job's events go through the writer, which finds no heartbeat due each time.
  ASSERT_TRUE(gateway_.Send(AssignMsg("j1", 1)));
  ASSERT_TRUE(gateway_.WaitFor([](auto& r, auto&, int) { return JobEnded(r, "j1"); }));
  EXPECT_EQ(gateway_.heartbeats(), 1);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(WaitHeartbeats(2));
  EXPECT_EQ(gateway_.heartbeats(), 2);
}

TEST_F(GatewayClientTest, CancelFromTheFrontEndsTheJobAsCancelled) {
  ASSERT_TRUE(WaitWelcomed(1));
  ASSERT_TRUE(gateway_.Send(AssignMsg("long", 50)));
  ASSERT_TRUE(WaitForEvent(&api::JobEvent::has_progress));
  wv1::DispatchMessage cancel;
  cancel.mutable_cancel()->set_job_id("long");
  cancel.mutable_cancel()->set_reason("client");
  ASSERT_TRUE(gateway_.Send(cancel));
  ASSERT_TRUE(gateway_.WaitFor([](auto& r, auto&, int) { return JobEnded(r, "long"); }));
  const auto events = gateway_.JobEvents("long");
  ASSERT_TRUE(events.back().has_cancelled());
  EXPECT_EQ(events.back().cancelled().source(), "client");
  int progress = 0;
  for (const auto& e : events) progress += e.has_progress() ? 1 : 0;
  EXPECT_LT(progress, 150);
  EXPECT_TRUE(runner_->WaitIdle(kWait));
}

TEST_F(GatewayClientTest, DrainFinishesTheRunningJobThenCloses) {
  ASSERT_TRUE(WaitWelcomed(1));
  ASSERT_TRUE(gateway_.Send(AssignMsg("last", 2)));
  ASSERT_TRUE(WaitForEvent(&api::JobEvent::has_started));
  wv1::DispatchMessage drain;
  drain.mutable_drain();
  ASSERT_TRUE(gateway_.Send(drain));
  // The worker half-closes after the job's last event, and Run returns OK.
  ASSERT_TRUE(gateway_.WaitFor([](auto&, auto&, int ended) { return ended >= 1; }));
  run_.join();
  EXPECT_TRUE(run_status_.ok()) << run_status_;
  const auto events = gateway_.JobEvents("last");
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().has_completed()) << events.back().DebugString();
  EXPECT_EQ(gateway_.hellos().size(), 1u);  // no reconnect after a drain
}

TEST_F(GatewayClientTest, ReconnectsAfterTheStreamDropsAndAbandonsTheRunningJob) {
  ASSERT_TRUE(WaitWelcomed(1));
  ASSERT_TRUE(gateway_.Send(AssignMsg("orphan", 50)));
  ASSERT_TRUE(WaitForEvent(&api::JobEvent::has_progress));
  gateway_.DropStream();
  // Run waits out its backoff on the clock: no new stream until the test advances it.
  ASSERT_TRUE(clock_.AwaitWaiter(clock_.Now() + kMaxBackoff, kWait));
  EXPECT_EQ(gateway_.hellos().size(), 1u);
  clock_.Advance(kMaxBackoff);
  ASSERT_TRUE(WaitWelcomed(2));
  EXPECT_EQ(gateway_.hellos()[1].worker_id(), "worker-a");
  EXPECT_TRUE(runner_->WaitIdle(kWait));
  // The front re-queues the job itself; a Cancelled from us would end it for the client.
  for (const auto& e : gateway_.JobEvents("orphan")) {
    EXPECT_FALSE(e.has_cancelled() || e.has_completed() || e.has_failed()) << e.DebugString();
  }
  // And the new stream serves jobs.
  ASSERT_TRUE(gateway_.Send(AssignMsg("after", 1)));
  ASSERT_TRUE(gateway_.WaitFor([](auto& r, auto&, int) { return JobEnded(r, "after"); }));
  EXPECT_TRUE(gateway_.JobEvents("after").back().has_completed());
}

TEST_F(GatewayClientTest, ADrainWhileWaitingToReconnectEndsRunAtOnce) {
  ASSERT_TRUE(WaitWelcomed(1));
  gateway_.DropStream();
  ASSERT_TRUE(clock_.AwaitWaiter(clock_.Now() + kMaxBackoff, kWait));  // in the backoff
  client_->Drain();
  run_.join();  // without advancing the clock
  EXPECT_TRUE(run_status_.ok()) << run_status_;
  EXPECT_EQ(gateway_.hellos().size(), 1u);
}

TEST_F(GatewayClientTest, ShutdownEndsRun) {
  ASSERT_TRUE(WaitWelcomed(1));
  client_->Shutdown();
  run_.join();
  EXPECT_TRUE(absl::IsCancelled(run_status_)) << run_status_;
}

// Readiness (the worker's /readyz) means "registered with the front": set by the Welcome,
// lost with the stream, back with the next Welcome, gone for good once a drain begins.
TEST_F(GatewayClientTest, ReadyOnlyWhileTheFrontHasAcceptedTheWorker) {
  ASSERT_TRUE(WaitWelcomed(1));
  EXPECT_TRUE(readiness_.Ready().ok()) << readiness_.Ready();
  gateway_.DropStream();
  ASSERT_TRUE(clock_.AwaitWaiter(clock_.Now() + kMaxBackoff, kWait));  // in the backoff
  EXPECT_TRUE(absl::IsUnavailable(readiness_.Ready()));
  EXPECT_THAT(std::string(readiness_.Ready().message()),
              ::testing::HasSubstr("not registered with the front"));
  EXPECT_TRUE(readiness_.Started().ok());  // the models stay loaded
  clock_.Advance(kMaxBackoff);
  ASSERT_TRUE(WaitWelcomed(2));
  EXPECT_TRUE(readiness_.Ready().ok()) << readiness_.Ready();
  client_->Drain();
  EXPECT_THAT(std::string(readiness_.Ready().message()), ::testing::HasSubstr("draining"));
}

// A front that refuses every worker, as one with another worker secret does.
class RejectingGateway final : public wv1::WorkerGateway::Service {
 public:
  grpc::Status Connect(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<wv1::DispatchMessage, wv1::WorkerMessage>*) override {
    absl::MutexLock lock(&mu_);
    ++connects_;
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong worker secret");
  }
  bool WaitForConnects(int n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertHeld();  // as in FakeGateway::WaitFor
      return connects_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }

 private:
  absl::Mutex mu_;
  int connects_ ABSL_GUARDED_BY(mu_) = 0;
};

// A rejected worker says why and when it tries again, once per attempt: without that, a
// worker with the wrong secret and a front that is down look the same (nothing happens).
TEST(GatewayClientRejectionTest, LogsEachRejectionWithItsStatusAndTheNextDelay) {
  RejectingGateway gateway;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&gateway);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto dir = testing::WriteTinyPackage("tiny");
  ASSERT_TRUE(dir.ok()) << dir.status();
  auto models = LoadModels(*dir, {"tiny"}, torch::kCPU, nullptr);
  ASSERT_TRUE(models.ok()) << models.status();

  GatewayClientOptions options;
  options.server_address = "127.0.0.1:" + std::to_string(port);
  options.worker_id = "worker-r";
  options.backoff.initial = absl::Milliseconds(10);
  options.backoff.max = absl::Milliseconds(100);
  options.backoff.jitter = 0;  // exact delays: 10, 20, 40 ms
  WorkerReadiness readiness;
  readiness.SetModelsLoaded();
  options.readiness = &readiness;
  // Real time: the test reads the delays the client waited.
  common::RealClock clock;
  GatewayClient client(options, clock);
  JobRunner runner(*std::move(models), /*slots=*/1, client, JobRunnerOptions{});
  ::testing::internal::CaptureStderr();
  std::thread run([&] { client.Run(runner).IgnoreError(); });
  // The log line of attempt n is written before attempt n + 1 dials.
  const bool rejected_three_times = gateway.WaitForConnects(3);
  client.Shutdown();
  run.join();
  const std::string log = ::testing::internal::GetCapturedStderr();
  runner.Shutdown();
  server->Shutdown();
  std::filesystem::remove_all(*dir);
  ASSERT_TRUE(rejected_three_times);
  const std::string prefix = "tpdiff-worker: connecting to " + options.server_address +
                             " ended: UNAUTHENTICATED: wrong worker secret; ";
  EXPECT_THAT(log, ::testing::HasSubstr(prefix + "retry 1 in 10ms\n"));
  EXPECT_THAT(log, ::testing::HasSubstr(prefix + "retry 2 in 20ms\n"));
  EXPECT_FALSE(client.connected());
  // Loaded but refused: never ready, and the probe says why.
  EXPECT_TRUE(readiness.Started().ok());
  EXPECT_THAT(std::string(readiness.Ready().message()),
              ::testing::HasSubstr("not registered with the front"));
}

class GatewaySecurityTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv(common::kWorkerSecretEnv);
    unlink(secret_file_.c_str());
  }
  const std::string secret_file_ =
      ::testing::TempDir() + "/gateway-secret-" + std::to_string(getpid());
};

TEST_F(GatewaySecurityTest, TheSecretComesFromTheFileElseTheEnvironment) {
  GatewaySecurityFlags flags;
  flags.insecure = true;
  GatewayClientOptions options;
  ASSERT_TRUE(ConfigureGatewaySecurity(flags, options).ok());
  EXPECT_NE(options.credentials, nullptr);
  EXPECT_EQ(options.secret, "");
  setenv(common::kWorkerSecretEnv, "from-the-environment", 1);
  ASSERT_TRUE(ConfigureGatewaySecurity(flags, options).ok());
  EXPECT_EQ(options.secret, "from-the-environment");
  std::ofstream(secret_file_) << "from-the-file\n";
  flags.worker_secret_file = secret_file_;
  ASSERT_TRUE(ConfigureGatewaySecurity(flags, options).ok());
  EXPECT_EQ(options.secret, "from-the-file");
  flags.worker_secret_file = "/nonexistent/secret";
  absl::Status missing = ConfigureGatewaySecurity(flags, options);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), ::testing::HasSubstr("--worker-secret-file"));
}

TEST_F(GatewaySecurityTest, ConflictingFlagsAreRejected) {
  GatewaySecurityFlags flags;
  flags.insecure = true;
  flags.tls_ca = "/ca.pem";
  GatewayClientOptions options;
  EXPECT_EQ(ConfigureGatewaySecurity(flags, options).code(), absl::StatusCode::kInvalidArgument);
  flags = GatewaySecurityFlags();
  flags.tls_cert = "/cert.pem";  // without --tls-key
  EXPECT_EQ(ConfigureGatewaySecurity(flags, options).code(), absl::StatusCode::kInvalidArgument);
}

TEST(DefaultWorkerIdTest, IsHostnameDashPid) {
  EXPECT_THAT(DefaultWorkerId(), ::testing::EndsWith("-" + std::to_string(getpid())));
}

}  // namespace
}  // namespace tpdiff::worker
