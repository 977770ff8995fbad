// Server + real worker + client, over real gRPC on 127.0.0.1 with port 0.

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_certs.h"
#include "tiny_latent_package.h"
#include "tiny_package.h"
#include "serving_helpers.h"
#include "tpdiff/client/commands.h"
#include "tpdiff/common/channel_security.h"
#include "tpdiff/common/clock.h"
#include "tpdiff/client/health.h"
#include "tpdiff/media/decoder.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"
#include "tpdiff/worker/gateway_client.h"
#include "tpdiff/worker/job_runner.h"
#include "tpdiff/worker/models.h"

namespace tpdiff::worker {
namespace {

namespace api = ::tpdiff::v1;

// An in-process worker: GatewayClient + JobRunner on the tiny model.
class InProcessWorker {
 public:
  InProcessWorker(const std::string& target, const std::string& models_dir, std::string id) {
    auto models = LoadModels(models_dir, {"tiny"}, torch::kCPU, nullptr);
    EXPECT_TRUE(models.ok()) << models.status();
    GatewayClientOptions options;
    options.server_address = target;
    options.worker_id = id;
    options.device = "cpu";
    options.version = "test";
    options.models.push_back(ToModelInfo(*models->at("tiny")));
    options.backoff.initial = absl::Milliseconds(20);
    options.backoff.max = absl::Milliseconds(200);
    client_ = std::make_unique<GatewayClient>(options, clock_);
    JobRunnerOptions runner_options;
    runner_options.worker_id = id;
    runner_ =
        std::make_unique<JobRunner>(*std::move(models), /*slots=*/1, *client_, runner_options);
    thread_ = std::thread([this] { client_->Run(*runner_).IgnoreError(); });
  }
  ~InProcessWorker() {
    client_->Shutdown();
    thread_.join();
    runner_->Shutdown();
  }
  JobRunner& runner() { return *runner_; }

 private:
  common::RealClock clock_;  // a real front: real time
  std::unique_ptr<GatewayClient> client_;
  std::unique_ptr<JobRunner> runner_;
  std::thread thread_;
};

using testing::WorkerProcess;

class WorkerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::WriteTinyPackage("tiny");
    ASSERT_TRUE(dir.ok()) << dir.status();
    models_dir_ = *dir;
    StartServer(server::FrontServerOptions());
  }
  // (Re)starts the front with the test's timings on top of `options` (plaintext unless
  // options.tls is set; stub_ is then the caller's business).
  void StartServer(server::FrontServerOptions options) {
    if (server_ != nullptr) server_->Shutdown(absl::ZeroDuration());
    options.listen = "127.0.0.1:0";
    options.models_dir = models_dir_;
    options.dispatcher.heartbeat_interval = absl::Milliseconds(200);
    options.dispatcher.lease_timeout = absl::Seconds(5);
    options.tick_interval = absl::Milliseconds(20);
    server_ = std::make_unique<server::FrontServer>(options, clock_);
    ASSERT_TRUE(server_->Start().ok());
    target_ = "127.0.0.1:" + std::to_string(server_->port());
    channel_ = grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
    stub_ = api::VideoGeneration::NewStub(channel_);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::ZeroDuration());
    std::filesystem::remove_all(models_dir_);
  }

  // A TLS front serving `cert_file`/`key_file` that wants the worker secret and tenant
  // "acme"'s API key kAcmeKey. Returns the path of the secret file, written into certs.dir.
  std::string StartTlsServer(const tpdiff::testing::TestCerts& certs, const std::string& cert_file,
                             const std::string& key_file) {
    const std::string secret_file = certs.dir + "/worker-secret";
    std::ofstream(secret_file) << kWorkerSecret << "\n";
    server::FrontServerOptions options;
    options.tls = server::ServerTls{tpdiff::testing::ReadTestFile(cert_file),
                                    tpdiff::testing::ReadTestFile(key_file), ""};
    options.worker_auth.secret = kWorkerSecret;
    options.tenants = std::vector<server::TenantConfig>{
        server::TenantConfig{"acme", {server::Sha256Hex(kAcmeKey)}, server::TenantLimits{}}};
    StartServer(options);
    return secret_file;
  }
  static constexpr char kWorkerSecret[] = "worker-secret-0123456789abcdef";
  static constexpr char kAcmeKey[] = "acme-key-1";

  bool WaitForWorkers(size_t n) { return testing::WaitForWorkers(*server_, n); }

  static api::GenerateRequest Request(uint32_t steps_per_stage) {
    api::GenerateRequest r;
    r.set_model("tiny");
    r.set_prompt("a green triangle moving right");
    r.set_seed(9);
    for (int i = 0; i < 3; ++i) r.add_stage_steps(steps_per_stage);
    r.mutable_preview()->set_enabled(true);
    return r;
  }

  std::vector<api::JobEvent> GenerateAll(const api::GenerateRequest& request) {
    return testing::GenerateAll(*stub_, request);
  }

  // Follows a job with WatchJob until `pred` holds for an event; returns the events so far.
  template <typename Pred>
  std::vector<api::JobEvent> WatchUntil(const std::string& job_id, Pred pred) {
    grpc::ClientContext context;
    api::WatchJobRequest w;
    w.set_job_id(job_id);
    auto reader = stub_->WatchJob(&context, w);
    std::vector<api::JobEvent> events;
    api::JobEvent e;
    while (reader->Read(&e)) {
      events.push_back(e);
      if (pred(e)) break;
    }
    context.TryCancel();
    reader->Finish();
    return events;
  }

  std::string Submit(const api::GenerateRequest& request) {
    grpc::ClientContext context;
    api::Job job;
    EXPECT_TRUE(stub_->SubmitJob(&context, request, &job).ok());
    return job.job_id();
  }

  server::RealClock clock_;
  std::string models_dir_;
  std::unique_ptr<server::FrontServer> server_;
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<api::VideoGeneration::Stub> stub_;
};

TEST_F(WorkerIntegrationTest, EventsArriveInOrderWithGaplessSeqs) {
  InProcessWorker worker(target_, models_dir_, "w-in");
  ASSERT_TRUE(WaitForWorkers(1));
  const std::vector<api::JobEvent> events = GenerateAll(Request(2));
  ASSERT_FALSE(events.empty());
  ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();
  std::vector<std::string> kinds;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(events[i].job_id(), events[0].job_id());
    const auto* field = events[i].GetDescriptor()->FindOneofByName("kind");
    const auto* set = events[i].GetReflection()->GetOneofFieldDescriptor(events[i], field);
    if (kinds.empty() || kinds.back() != set->name()) kinds.push_back(set->name());
  }
  EXPECT_THAT(kinds, ::testing::ElementsAre("queued", "started", "progress", "stage_preview",
                                            "progress", "stage_preview", "progress",
                                            "stage_preview", "result_chunk", "completed"));
  EXPECT_EQ(events[1].started().worker_id(), "w-in");
  EXPECT_EQ(events.back().completed().timings().stage_seconds_size(), 3);
}

TEST_F(WorkerIntegrationTest, ClientGeneratesWritesPreviewsAndVideo) {
  InProcessWorker worker(target_, models_dir_, "w-in");
  ASSERT_TRUE(WaitForWorkers(1));
  const std::string out = models_dir_ + "/out.mp4";
  client::GenerateOptions options;
  options.request = Request(2);
  options.request.clear_preview();
  options.out_path = out;
  options.previews_dir = models_dir_ + "/previews";
  std::ostringstream sout, serr;
  client::CommandIo io{sout, serr};
  absl::StatusOr<client::GenerateResult> result = client::RunGenerate(*stub_, options, io);
  ASSERT_TRUE(result.ok()) << result.status() << serr.str();
  EXPECT_EQ(result->timings.stage_seconds_size(), 3);
  ASSERT_EQ(result->previews.size(), 3u);
  EXPECT_EQ(result->previews[0], options.previews_dir + "/stage1.gif");
  const std::vector<int> frames = {4, 8, 16};
  for (int i = 0; i < 3; ++i) {
    std::ifstream f(result->previews[i], std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), {});
    auto video = media::DecodeVideo(bytes);
    ASSERT_TRUE(video.ok()) << video.status();
    EXPECT_EQ(video->frames, frames[i]);
  }
  std::ifstream f(out, std::ios::binary);
  std::string mp4((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(mp4.size(), result->result_bytes);
  auto video = media::DecodeVideo(mp4);
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->frames, 16);
  EXPECT_THAT(sout.str(), ::testing::HasSubstr("stage 3/3"));
  EXPECT_THAT(serr.str(), ::testing::HasSubstr("stage 1/3"));

  // The other commands against the same server.
  std::ostringstream models_out, e2;
  client::CommandIo io2{models_out, e2};
  ASSERT_TRUE(client::RunModels(*stub_, absl::Seconds(10), io2).ok());
  EXPECT_THAT(models_out.str(), ::testing::HasSubstr("tiny"));
  std::ostringstream get_out;
  client::CommandIo io3{get_out, e2};
  ASSERT_TRUE(client::RunGet(*stub_, result->job_id, absl::Seconds(10), io3).ok());
  EXPECT_THAT(get_out.str(), ::testing::HasSubstr("JOB_STATE_COMPLETED"));
  std::ostringstream watch_out;
  client::CommandIo io4{watch_out, e2};
  ASSERT_TRUE(client::RunWatch(*stub_, result->job_id, result->last_seq - 1, {}, io4).ok());
  EXPECT_THAT(watch_out.str(), ::testing::StartsWith(absl::StrCat("seq ", result->last_seq,
                                                                   " completed")));
  auto health = client::CheckHealth(channel_, "", absl::Seconds(10));
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, "SERVING");
}

TEST_F(WorkerIntegrationTest, BadRequestFailsTheClientWithTheServersMessage) {
  InProcessWorker worker(target_, models_dir_, "w-in");
  ASSERT_TRUE(WaitForWorkers(1));
  client::GenerateOptions options;
  options.request = Request(2);
  options.request.set_prompt("a purple dragon");
  options.out_path = models_dir_ + "/never.mp4";
  std::ostringstream sout, serr;
  client::CommandIo io{sout, serr};
  auto result = client::RunGenerate(*stub_, options, io);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), ::testing::HasSubstr("purple"));
  EXPECT_FALSE(std::filesystem::exists(options.out_path));
}

TEST_F(WorkerIntegrationTest, CancelMidStreamFreesTheWorkerForTheNextJob) {
  InProcessWorker worker(target_, models_dir_, "w-in");
  ASSERT_TRUE(WaitForWorkers(1));
  const std::string long_job = Submit(Request(100));
  WatchUntil(long_job, [](const api::JobEvent& e) { return e.has_progress(); });
  grpc::ClientContext context;
  api::CancelJobRequest cancel;
  cancel.set_job_id(long_job);
  api::Job job;
  ASSERT_TRUE(stub_->CancelJob(&context, cancel, &job).ok());
  const auto events = WatchUntil(long_job, [](const api::JobEvent& e) {
    return e.has_cancelled() || e.has_completed() || e.has_failed();
  });
  ASSERT_TRUE(events.back().has_cancelled()) << events.back().DebugString();
  int progress = 0;
  for (const auto& e : events) progress += e.has_progress() ? 1 : 0;
  EXPECT_LT(progress, 300);
  EXPECT_TRUE(worker.runner().WaitIdle(absl::Seconds(30)));

  const auto next = GenerateAll(Request(1));
  ASSERT_FALSE(next.empty());
  EXPECT_TRUE(next.back().has_completed()) << next.back().DebugString();
}

TEST_F(WorkerIntegrationTest, KilledWorkerProcessJobCompletesOnAnotherWorker) {
  auto doomed = std::make_unique<WorkerProcess>(target_, models_dir_, "proc-doomed");
  ASSERT_TRUE(WaitForWorkers(1));
  const std::string id = Submit(Request(100));
  const auto before = WatchUntil(id, [](const api::JobEvent& e) { return e.has_progress(); });
  ASSERT_TRUE(before.back().has_progress());
  doomed->Kill();  // SIGKILL mid-job
  InProcessWorker survivor(target_, models_dir_, "w-survivor");
  const auto events = WatchUntil(id, [](const api::JobEvent& e) {
    return e.has_cancelled() || e.has_completed() || e.has_failed();
  });
  ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();
  std::vector<std::string> workers;
  bool requeued = false;
  for (const auto& e : events) {
    if (e.has_started()) workers.push_back(e.started().worker_id());
    requeued |= e.has_requeued();
  }
  EXPECT_TRUE(requeued);
  EXPECT_THAT(workers, ::testing::ElementsAre("proc-doomed", "w-survivor"));
}

// A latent package whose decoder disagrees with its manifest fails the worker's load-time
// checks: the tpdiff-worker binary exits with the module, input and expected shape named,
// without the module's TorchScript traceback, and never reports to the front.
TEST_F(WorkerIntegrationTest, WorkerWithAFailingLatentPackageExitsWithoutServing) {
  auto dir = model::testing::WriteTinyLatentPackage("tiny-latent");
  ASSERT_TRUE(dir.ok()) << dir.status();
  model::testing::SaveTinyModule(*dir + "/tiny-latent/vae_decoder.pt", R"(
def forward(self, latents):
    return latents[:, :3] * self.w
)");
  const std::string log = *dir + "/worker.log";
  WorkerProcess process(target_, *dir, "proc-latent", {"--insecure"}, log);
  EXPECT_EQ(process.WaitForExit(absl::Seconds(60)), 1);
  EXPECT_EQ(server_->dispatcher().ServingWorkers(), 0u);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_THAT(text, ::testing::HasSubstr("model tiny-latent: "));
  EXPECT_THAT(text, ::testing::HasSubstr("vae: output [1, 3, 2, 4, 4] Float for latents "
                                         "[1, 4, 2, 4, 4]; expected [1, 3, 3, 8, 8]"));
  std::filesystem::remove_all(*dir);
}

TEST_F(WorkerIntegrationTest, WorkerBinaryServesAJob) {
  WorkerProcess process(target_, models_dir_, "proc-a");
  ASSERT_TRUE(WaitForWorkers(1));
  const auto events = GenerateAll(Request(1));
  ASSERT_FALSE(events.empty());
  ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();
  EXPECT_EQ(events[1].started().worker_id(), "proc-a");
}

// The real binaries' security path: a TLS front that wants the worker secret and API keys,
// the tpdiff-worker binary with --tls-ca and --worker-secret-file, and the client library's
// credentials (CA + bearer key). Certificates are made at test time.
TEST_F(WorkerIntegrationTest, TlsWorkerProcessWithSecretServesAnApiKeyClient) {
  absl::StatusOr<tpdiff::testing::TestCerts> certs = tpdiff::testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.status();
  const std::string secret_file = StartTlsServer(*certs, certs->server_cert, certs->server_key);

  WorkerProcess worker(target_, models_dir_, "proc-tls",
                       {"--tls-ca=" + certs->ca_cert, "--worker-secret-file=" + secret_file});
  ASSERT_TRUE(WaitForWorkers(1));

  tpdiff::common::ChannelSecurity security;
  security.ca_file = certs->ca_cert;
  security.api_key = kAcmeKey;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      tpdiff::common::MakeChannelCredentials(security);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  stub_ = api::VideoGeneration::NewStub(grpc::CreateChannel(target_, *credentials));
  const std::vector<api::JobEvent> events = GenerateAll(Request(1));
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().has_completed()) << events.back().DebugString();

  // The same client with --insecure is refused locally rather than leak the key.
  security.ca_file.clear();
  security.insecure = true;
  EXPECT_EQ(tpdiff::common::MakeChannelCredentials(security).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(certs->dir);
}

// Through `kubectl port-forward` the dialled host (here 127.0.0.1) is not the name in the
// front's certificate. --tls-server-name names the one to verify, for the worker binary and
// the client library alike; without it the handshake fails.
TEST_F(WorkerIntegrationTest, TlsServerNameVerifiesTheCertificatesNameNotTheDialledHost) {
  absl::StatusOr<tpdiff::testing::TestCerts> certs = tpdiff::testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.status();
  const std::string secret_file =
      StartTlsServer(*certs, certs->named_server_cert, certs->named_server_key);

  tpdiff::common::ChannelSecurity security;
  security.ca_file = certs->ca_cert;
  security.api_key = kAcmeKey;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> unnamed =
      tpdiff::common::MakeChannel(target_, security);
  ASSERT_TRUE(unnamed.ok()) << unnamed.status();
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    api::ListModelsResponse response;
    EXPECT_EQ(api::VideoGeneration::NewStub(*unnamed)->ListModels(&context, {}, &response)
                  .error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }

  WorkerProcess worker(target_, models_dir_, "proc-named",
                       {"--tls-ca=" + certs->ca_cert, "--tls-server-name=tpdiff-front.test",
                        "--worker-secret-file=" + secret_file});
  ASSERT_TRUE(WaitForWorkers(1));
  security.server_name = "tpdiff-front.test";
  absl::StatusOr<std::shared_ptr<grpc::Channel>> named =
      tpdiff::common::MakeChannel(target_, security);
  ASSERT_TRUE(named.ok()) << named.status();
  stub_ = api::VideoGeneration::NewStub(*named);
  const std::vector<api::JobEvent> events = GenerateAll(Request(1));
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().has_completed()) << events.back().DebugString();
  std::filesystem::remove_all(certs->dir);
}

}  // namespace
}  // namespace tpdiff::worker
