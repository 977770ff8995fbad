#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "tpdiff/client/cli.h"
#include "tpdiff/client/commands.h"
#include "tpdiff/client/progress.h"
#include "tpdiff/client/request.h"

namespace tpdiff::client {
namespace {

namespace api = ::tpdiff::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RequestTest, BuildsTheRequestFromFlags) {
  RequestFlags f;
  f.prompt = "a red circle";
  f.steps = "4, 3,2";
  f.format = "webm";
  f.previews = true;
  f.sampler = "vanilla";
  f.priority = "interactive";
  f.max_queue_wait = absl::Milliseconds(1500);
  f.frames = 17;
  f.height = 48;
  f.width = 80;
  auto r = BuildRequest(f);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_frames(), 17u);
  EXPECT_EQ(r->height(), 48u);
  EXPECT_EQ(r->width(), 80u);
  EXPECT_THAT(r->stage_steps(), ElementsAre(4, 3, 2));
  EXPECT_EQ(r->output().format(), api::VIDEO_FORMAT_WEBM);
  EXPECT_TRUE(r->preview().enabled());
  EXPECT_EQ(r->preview().format(), api::VIDEO_FORMAT_GIF);
  EXPECT_EQ(r->sampler(), api::SAMPLER_VANILLA);
  EXPECT_EQ(r->priority(), api::PRIORITY_INTERACTIVE);
  EXPECT_EQ(r->max_queue_wait().seconds(), 1);
  EXPECT_EQ(r->max_queue_wait().nanos(), 500000000);
}

TEST(RequestTest, RejectsBadFlagsNamingThem) {
  RequestFlags f;
  EXPECT_THAT(BuildRequest(f).status().message(), HasSubstr("--prompt"));
  f.prompt = "x";
  f.steps = "10,x";
  EXPECT_THAT(BuildRequest(f).status().message(), HasSubstr("--steps"));
  f.steps = "10,0";
  EXPECT_FALSE(BuildRequest(f).ok());
  f.steps = "";
  f.format = "avi";
  EXPECT_THAT(BuildRequest(f).status().message(), HasSubstr("--format"));
  f.format = "png";
  f.sampler = "ddim";
  EXPECT_THAT(BuildRequest(f).status().message(), HasSubstr("--sampler"));
  EXPECT_EQ(ExtensionForMime("image/gif"), "gif");
  EXPECT_EQ(ExtensionForMime("application/zip"), "zip");
}

// Usage errors are found before any call, so these need no server (the channel to port 1 is
// never used).
class CliTest : public ::testing::Test {
 protected:
  int Run(std::vector<std::string> args) {
    options_.server = "127.0.0.1:1";
    options_.security.insecure = true;
    return RunCli(args, options_, interrupt_, CommandIo{out_, err_});
  }
  CliOptions options_;
  Interrupt interrupt_;
  std::ostringstream out_, err_;
};

TEST_F(CliTest, NoCommandPrintsTheUsage) {
  EXPECT_EQ(Run({"tpdiff"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("tpdiff <command> [flags]"));
}

TEST_F(CliTest, AnUnknownCommandIsAUsageError) {
  EXPECT_EQ(Run({"tpdiff", "render"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("unknown command \"render\""));
}

TEST_F(CliTest, MissingArgumentsAreUsageErrorsNamingWhatIsMissing) {
  options_.request.prompt = "a red circle";
  EXPECT_EQ(Run({"tpdiff", "generate"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--out: required"));
  EXPECT_EQ(Run({"tpdiff", "get"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("get: JOB id required"));
  options_.request.format = "avi";
  EXPECT_EQ(Run({"tpdiff", "submit"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--format"));
}

TEST_F(CliTest, AnApiKeyOverPlaintextIsRefusedBeforeDialling) {
  options_.security.api_key = "k";
  EXPECT_EQ(Run({"tpdiff", "models"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("only sent over TLS"));
}

api::JobEvent Progress(uint32_t stage, uint32_t step, uint32_t steps, uint32_t frames) {
  api::JobEvent e;
  auto* p = e.mutable_progress();
  p->set_stage(stage);
  p->set_stage_count(3);
  p->set_step(step);
  p->set_steps_in_stage(steps);
  p->set_frames(frames);
  return e;
}

TEST(ProgressTrackerTest, ShowsQueuePositionThenStagesWithAFrameWeightedEta) {
  ProgressTracker t({10, 10, 10});
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  api::JobEvent queued;
  queued.mutable_queued()->set_position(2);
  t.Observe(queued, t0);
  EXPECT_EQ(t.Line(), "queued, position 2");
  api::JobEvent started;
  started.mutable_started()->set_worker_id("w");
  t.Observe(started, t0);
  // Work in frame-steps: 10*4 + 10*8 + 10*16 = 280. After stage 1 (40) in 4 s, 240 remain.
  t.Observe(Progress(1, 10, 10, 4), t0 + absl::Seconds(4));
  EXPECT_NEAR(t.Fraction(), 40.0 / 280.0, 1e-9);
  ASSERT_TRUE(t.Eta().has_value());
  EXPECT_NEAR(absl::ToDoubleSeconds(*t.Eta()), 24.0, 1e-6);
  EXPECT_THAT(t.Line(), HasSubstr("stage 1/3 step 10/10 (4 frames) ETA 24.0s"));
  t.Observe(Progress(3, 5, 10, 16), t0 + absl::Seconds(20));
  EXPECT_NEAR(t.Fraction(), 200.0 / 280.0, 1e-9);
  api::JobEvent requeued;
  requeued.mutable_requeued()->set_attempt(2);
  t.Observe(requeued, t0 + absl::Seconds(21));
  EXPECT_THAT(t.Line(), HasSubstr("requeued"));
  EXPECT_EQ(t.Fraction(), 0.0);
}

TEST(ProgressTrackerTest, FormatsTimings) {
  api::Timings timings;
  timings.add_stage_seconds(0.5);
  timings.add_stage_seconds(1.25);
  timings.set_total_seconds(2);
  const std::string s = FormatTimings(timings, {8, 16});
  EXPECT_THAT(s, HasSubstr("stage 1/2: 0.500 s (8 frames)"));
  EXPECT_THAT(s, HasSubstr("stage 2/2: 1.250 s (16 frames)"));
  EXPECT_THAT(s, HasSubstr("total: 2.000 s"));
}

// A front that breaks the Generate stream after three events; WatchJob replays the rest of
// the log after the requested seq.
class BreakingFront final : public api::VideoGeneration::Service {
 public:
  BreakingFront() {
    auto add = [&](api::JobEvent e) {
      e.set_job_id("job-7");
      e.set_seq(static_cast<int64_t>(log_.size()) + 1);
      log_.push_back(e);
    };
    api::JobEvent e;
    e.mutable_queued()->set_position(0);
    add(e);
    e.Clear();
    e.mutable_started()->set_worker_id("w");
    add(e);
    add(Progress(1, 1, 1, 4));
    e.Clear();
    e.mutable_stage_preview()->set_stage(1);
    e.mutable_stage_preview()->mutable_media()->set_mime("image/gif");
    e.mutable_stage_preview()->mutable_media()->set_data("GIF89a");
    add(e);
    for (int i = 0; i < 2; ++i) {
      e.Clear();
      auto* c = e.mutable_result_chunk();
      c->set_offset(i * 5);
      c->set_data(i == 0 ? "hello" : "world");
      c->set_last(i == 1);
      c->set_mime("video/mp4");
      add(e);
    }
    e.Clear();
    e.mutable_completed()->set_result_bytes(10);
    e.mutable_completed()->mutable_timings()->add_stage_seconds(0.1);
    add(e);
  }

  grpc::Status Generate(grpc::ServerContext*, const api::GenerateRequest* request,
                        grpc::ServerWriter<api::JobEvent>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      generate_request_ = *request;
    }
    for (int i = 0; i < 3; ++i) writer->Write(log_[i]);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "front restarting");
  }
  grpc::Status WatchJob(grpc::ServerContext*, const api::WatchJobRequest* request,
                        grpc::ServerWriter<api::JobEvent>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      watch_requests_.push_back(*request);
    }
    if (request->job_id() != "job-7") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job");
    for (const auto& e : log_) {
      if (e.seq() > request->after_seq()) writer->Write(e);
    }
    return grpc::Status::OK;
  }

  absl::Mutex mu_;
  api::GenerateRequest generate_request_ ABSL_GUARDED_BY(mu_);
  std::vector<api::WatchJobRequest> watch_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<api::JobEvent> log_;
};

TEST(GenerateTest, ResumesABrokenStreamWithWatchJobFromTheLastSeq) {
  BreakingFront front;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&front);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = api::VideoGeneration::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  const std::string dir = ::testing::TempDir() + "/tpdiff-client-resume";
  std::filesystem::remove_all(dir);
  GenerateOptions options;
  options.request.set_prompt("a red circle");
  options.out_path = dir + "/out.mp4";
  options.previews_dir = dir + "/previews";
  options.follow.resume_backoff = absl::Milliseconds(1);
  std::ostringstream out, err;
  CommandIo io{out, err};
  auto result = RunGenerate(*stub, options, io);
  ASSERT_TRUE(result.ok()) << result.status() << err.str();
  EXPECT_EQ(result->job_id, "job-7");
  EXPECT_EQ(result->resumes, 1);
  EXPECT_EQ(result->last_seq, 7);
  {
    absl::MutexLock lock(&front.mu_);
    ASSERT_EQ(front.watch_requests_.size(), 1u);
    EXPECT_EQ(front.watch_requests_[0].after_seq(), 3);
    // Resuming needs the job to survive our disconnect; an id makes a re-send idempotent.
    EXPECT_FALSE(front.generate_request_.cancel_on_disconnect());
    EXPECT_FALSE(front.generate_request_.request_id().empty());
    EXPECT_TRUE(front.generate_request_.preview().enabled());
  }
  std::ifstream f(options.out_path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(bytes, "helloworld");
  EXPECT_TRUE(std::filesystem::exists(dir + "/previews/stage1.gif"));
  EXPECT_THAT(err.str(), HasSubstr("resuming job job-7 after seq 3"));
  EXPECT_THAT(out.str(), HasSubstr("stage 1/1: 0.100 s"));
  server->Shutdown();
  std::filesystem::remove_all(dir);
}

// Nothing listens at the address: the call says so once, with the address and gRPC's reason,
// instead of "resuming job  after seq 0" (no job id) until the resume attempts run out.
TEST(GenerateTest, AnUnreachableServerFailsAtOnceNamingTheAddress) {
  // A port the kernel just handed out, with no listener: bound, then closed.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  const int port = ntohs(addr.sin_port);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto stub = api::VideoGeneration::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  GenerateOptions options;
  options.request.set_prompt("a red circle");
  options.out_path = ::testing::TempDir() + "/tpdiff-client-unreachable.mp4";
  options.follow.server = address;
  std::ostringstream out, err;
  CommandIo io{out, err};
  absl::StatusOr<GenerateResult> result = RunGenerate(*stub, options, io);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status().message()),
              ::testing::StartsWith("cannot reach the server at " + address + ": "));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("no job id was received"));
  EXPECT_THAT(err.str(), ::testing::Not(HasSubstr("resuming")));
  EXPECT_FALSE(std::filesystem::exists(options.out_path));
}

TEST(FormatEventTest, OneLinePerEvent) {
  api::JobEvent e = Progress(2, 3, 10, 8);
  e.set_seq(5);
  EXPECT_EQ(FormatEvent(e), "seq 5 progress stage 2/3 step 3/10 frames 8");
  api::JobEvent f;
  f.set_seq(9);
  f.mutable_failed()->set_code(3);
  f.mutable_failed()->set_message("prompt: bad");
  EXPECT_EQ(FormatEvent(f), "seq 9 failed code 3 retryable false: prompt: bad");
}

}  // namespace
}  // namespace tpdiff::client
