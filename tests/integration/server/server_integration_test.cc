// The front server over real gRPC on 127.0.0.1 (port 0), with TestWorker as the worker
// fleet. Tests wait on conditions with generous timeouts, never on fixed sleeps.
#include <functional>
#include <thread>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "raw_http.h"
#include "test_model.h"
#include "test_worker.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

namespace tpdiff::server {
namespace {

using ::testing::HasSubstr;
using testing::TestWorker;
using testing::ValidRequest;
using tpdiff::v1::GenerateRequest;
using tpdiff::v1::JobEvent;

// Polls `condition` until it holds or `timeout` passes (real time; the server runs on it).
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(15)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

std::string Kind(const JobEvent& event) {
  const auto* field = JobEvent::descriptor()->FindFieldByNumber(event.kind_case());
  return field != nullptr ? field->name() : "?";
}

// Reads a server stream to its end.
struct StreamResult {
  std::vector<JobEvent> events;
  grpc::Status status;
};

StreamResult ReadAll(grpc::ClientReaderInterface<JobEvent>* reader) {
  StreamResult result;
  JobEvent event;
  while (reader->Read(&event)) result.events.push_back(event);
  result.status = reader->Finish();
  return result;
}

class ServerIntegrationTest : public ::testing::Test {
 protected:
  // with_metrics: serve /metrics (stopping civetweb's exposer takes about 2 s).
  void StartServer(size_t queue_capacity = 64, bool with_metrics = false) {
    FrontServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = with_metrics ? "127.0.0.1:0" : "";
    options.dispatcher.queue_capacity = queue_capacity;
    options.tick_interval = absl::Milliseconds(20);
    server_ = std::make_unique<FrontServer>(options, clock_);
    ASSERT_TRUE(server_->Start().ok());
    target_ = "127.0.0.1:" + std::to_string(server_->port());
    channel_ = grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
    api_ = tpdiff::v1::VideoGeneration::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  void TearDown() override {
    workers_.clear();
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }

  TestWorker& AddWorker(const std::string& id, bool auto_run, uint32_t slots = 1) {
    workers_.push_back(std::make_unique<TestWorker>(target_, id, auto_run, slots));
    EXPECT_TRUE(workers_.back()->Connect());
    return *workers_.back();
  }

  absl::StatusOr<tpdiff::v1::Job> Submit(const GenerateRequest& request) {
    grpc::ClientContext context;
    tpdiff::v1::Job job;
    grpc::Status status = api_->SubmitJob(&context, request, &job);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
    }
    return job;
  }

  tpdiff::v1::Job GetJob(const std::string& job_id) {
    grpc::ClientContext context;
    tpdiff::v1::GetJobRequest request;
    request.set_job_id(job_id);
    tpdiff::v1::Job job;
    EXPECT_TRUE(api_->GetJob(&context, request, &job).ok());
    return job;
  }

  bool WaitForState(const std::string& job_id, tpdiff::v1::JobState state) {
    return WaitFor([&] { return GetJob(job_id).state() == state; });
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& service) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    if (!health_->Check(&context, request, &response).ok()) {
      return grpc::health::v1::HealthCheckResponse::UNKNOWN;
    }
    return response.status();
  }

  // GET /metrics from the exposer.
  std::string ScrapeMetrics() { return tpdiff::testing::ScrapeMetrics(server_->metrics_port()); }

  RealClock clock_;
  std::unique_ptr<FrontServer> server_;
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<tpdiff::v1::VideoGeneration::Stub> api_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::vector<std::unique_ptr<TestWorker>> workers_;
};

TEST_F(ServerIntegrationTest, GenerateStreamsEveryEventInOrderWithGaplessSeq) {
  StartServer();
  TestWorker& worker = AddWorker("w1", /*auto_run=*/true);
  EXPECT_EQ(worker.welcome().heartbeat_interval().seconds(), 2);
  EXPECT_EQ(worker.welcome().lease_timeout().seconds(), 10);
  grpc::ClientContext context;
  GenerateRequest request = ValidRequest();
  request.mutable_preview()->set_enabled(true);
  StreamResult result = ReadAll(api_->Generate(&context, request).get());
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  std::vector<std::string> kinds;
  for (size_t i = 0; i < result.events.size(); ++i) {
    EXPECT_EQ(result.events[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(result.events[i].job_id(), result.events[0].job_id());
    EXPECT_TRUE(result.events[i].has_timestamp());
    kinds.push_back(Kind(result.events[i]));
  }
  EXPECT_THAT(kinds, ::testing::ElementsAre("queued", "started", "progress", "progress", "progress",
                                            "stage_preview", "stage_preview", "stage_preview",
                                            "result_chunk", "result_chunk", "result_chunk",
                                            "completed"));
  EXPECT_FALSE(result.events[0].job_id().empty());
  tpdiff::v1::Job job = GetJob(result.events[0].job_id());
  EXPECT_EQ(job.state(), tpdiff::v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(job.result_bytes(), 3u * TestWorker::kChunkBytes);
  EXPECT_NE(job.request().seed(), 0u);
  EXPECT_EQ(job.timings().stage_seconds_size(), 3);
}

TEST_F(ServerIntegrationTest, WatchJobResumesAfterADroppedConnection) {
  StartServer();
  TestWorker& worker = AddWorker("w1", /*auto_run=*/false);
  absl::StatusOr<tpdiff::v1::Job> job = Submit(ValidRequest());
  ASSERT_TRUE(job.ok()) << job.status();
  std::vector<tpdiff::worker::v1::Assign> assigns = worker.WaitForAssigns(1);
  ASSERT_EQ(assigns.size(), 1u);
  worker.SendStarted(assigns[0]);
  worker.SendProgress(assigns[0]);

  std::vector<JobEvent> seen;
  {
    grpc::ClientContext context;
    tpdiff::v1::WatchJobRequest watch;
    watch.set_job_id(job->job_id());
    auto reader = api_->WatchJob(&context, watch);
    JobEvent event;
    while (seen.size() < 3 && reader->Read(&event)) seen.push_back(event);
    context.TryCancel();  // the connection drops mid-job
    reader->Finish();
  }
  ASSERT_EQ(seen.size(), 3u);
  worker.SendRest(assigns[0]);
  grpc::ClientContext context;
  tpdiff::v1::WatchJobRequest resume;
  resume.set_job_id(job->job_id());
  resume.set_after_seq(seen.back().seq());
  StreamResult rest = ReadAll(api_->WatchJob(&context, resume).get());
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  seen.insert(seen.end(), rest.events.begin(), rest.events.end());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].seq(), static_cast<int64_t>(i + 1));
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_TRUE(seen.back().has_completed());
}

TEST_F(ServerIntegrationTest, ResubmittingARequestIdReturnsTheSameJob) {
  StartServer();
  GenerateRequest request = ValidRequest();
  request.set_request_id("idempotency-key-1");
  AddWorker("w1", /*auto_run=*/false);  // holds the job so nothing ends meanwhile
  absl::StatusOr<tpdiff::v1::Job> first = Submit(request);
  absl::StatusOr<tpdiff::v1::Job> second = Submit(request);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->job_id(), second->job_id());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto reader = api_->Generate(&context, request);
  JobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.job_id(), first->job_id());
  EXPECT_TRUE(event.has_queued());
  context.TryCancel();
  reader->Finish();
}

TEST_F(ServerIntegrationTest, CancelJobIsForwardedToTheWorker) {
  StartServer();
  TestWorker& worker = AddWorker("w1", /*auto_run=*/false);
  absl::StatusOr<tpdiff::v1::Job> job = Submit(ValidRequest());
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(worker.WaitForAssigns(1).size(), 1u);
  grpc::ClientContext context;
  tpdiff::v1::CancelJobRequest cancel;
  cancel.set_job_id(job->job_id());
  tpdiff::v1::Job cancelled;
  ASSERT_TRUE(api_->CancelJob(&context, cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), tpdiff::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(worker.WaitForCancel(job->job_id()));
}

TEST_F(ServerIntegrationTest, GenerateDisconnectCancelsExactlyThatJob) {
  StartServer();
  TestWorker& worker = AddWorker("w1", /*auto_run=*/false, /*slots=*/2);
  absl::StatusOr<tpdiff::v1::Job> other = Submit(ValidRequest());
  ASSERT_TRUE(other.ok());
  grpc::ClientContext context;
  auto reader = api_->Generate(&context, ValidRequest());
  JobEvent first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_EQ(worker.WaitForAssigns(2).size(), 2u);
  context.TryCancel();
  reader->Finish();
  EXPECT_TRUE(worker.WaitForCancel(first.job_id()));
  ASSERT_TRUE(WaitForState(first.job_id(), tpdiff::v1::JOB_STATE_CANCELLED));
  EXPECT_THAT(GetJob(first.job_id()).error(), HasSubstr("disconnect"));
  EXPECT_EQ(GetJob(other->job_id()).state(), tpdiff::v1::JOB_STATE_QUEUED);  // assigned, not started
  EXPECT_FALSE(worker.WaitForCancel(other->job_id(), absl::Milliseconds(200)));
}

TEST_F(ServerIntegrationTest, WorkerDroppedMidJobIsRequeuedAndCompletedByAnother) {
  StartServer();
  TestWorker& first = AddWorker("w1", /*auto_run=*/false);
  grpc::ClientContext context;
  auto reader = api_->Generate(&context, ValidRequest());
  std::vector<tpdiff::worker::v1::Assign> assigns = first.WaitForAssigns(1);
  ASSERT_EQ(assigns.size(), 1u);
  first.SendStarted(assigns[0]);
  first.SendProgress(assigns[0]);
  first.Drop();
  TestWorker& second = AddWorker("w2", /*auto_run=*/true);
  StreamResult result = ReadAll(reader.get());
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  std::vector<std::string> kinds;
  for (size_t i = 0; i < result.events.size(); ++i) {
    EXPECT_EQ(result.events[i].seq(), static_cast<int64_t>(i + 1));
    kinds.push_back(Kind(result.events[i]));
  }
  ASSERT_THAT(kinds, ::testing::Contains("requeued"));
  EXPECT_EQ(kinds.back(), "completed");
  auto requeued = std::find(kinds.begin(), kinds.end(), "requeued") - kinds.begin();
  EXPECT_EQ(result.events[requeued].requeued().attempt(), 2u);
  EXPECT_EQ(second.WaitForAssigns(1)[0].attempt(), 2u);
  EXPECT_EQ(GetJob(result.events[0].job_id()).attempt(), 2u);
}

TEST_F(ServerIntegrationTest, OverloadIsResourceExhaustedAndEveryAcceptedJobCompletes) {
  StartServer(/*queue_capacity=*/2);
  TestWorker& worker = AddWorker("w1", /*auto_run=*/false);
  std::vector<std::string> accepted;
  absl::Status rejected;
  for (int i = 0; i < 10 && rejected.ok(); ++i) {
    absl::StatusOr<tpdiff::v1::Job> job = Submit(ValidRequest());
    if (job.ok()) {
      accepted.push_back(job->job_id());
      if (accepted.size() == 1) ASSERT_EQ(worker.WaitForAssigns(1).size(), 1u);
    } else {
      rejected = job.status();
    }
  }
  EXPECT_EQ(rejected.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(rejected.message(), HasSubstr("is full"));
  EXPECT_EQ(accepted.size(), 3u);  // one running, two queued
  // Readiness reports the full queue (on the server's next tick).
  EXPECT_TRUE(WaitFor([&] {
    return Health(kReadinessService) == grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  }));
  worker.set_auto_run(true);
  worker.RunScript(worker.WaitForAssigns(1)[0]);
  for (const std::string& id : accepted) {
    EXPECT_TRUE(WaitForState(id, tpdiff::v1::JOB_STATE_COMPLETED)) << id;
  }
}

TEST_F(ServerIntegrationTest, EachInvalidFieldIsNamed) {
  StartServer();
  AddWorker("w1", /*auto_run=*/true);  // announces the model and its limits
  struct Case {
    std::string field;
    std::function<void(GenerateRequest&)> mutate;
  };
  const std::vector<Case> cases = {
      {"num_frames", [](GenerateRequest& r) { r.set_num_frames(40); }},
      {"height", [](GenerateRequest& r) { r.set_height(64); }},
      {"width", [](GenerateRequest& r) { r.set_width(64); }},
      {"fps", [](GenerateRequest& r) { r.set_fps(61); }},
      {"stage_steps", [](GenerateRequest& r) { for (int i = 0; i < 6; ++i) r.add_stage_steps(1); }},
      {"stage_steps[0]", [](GenerateRequest& r) { r.add_stage_steps(101); }},
      {"guidance_scale", [](GenerateRequest& r) { r.set_guidance_scale(21); }},
      {"prompt", [](GenerateRequest& r) { r.clear_prompt(); }},
      {"prompt", [](GenerateRequest& r) { r.set_prompt("a spaceship"); }},
      {"negative_prompt", [](GenerateRequest& r) { r.set_negative_prompt(std::string(513, 'a')); }},
      {"request_id", [](GenerateRequest& r) { r.set_request_id(std::string(129, 'x')); }},
      {"model", [](GenerateRequest& r) { r.set_model("nope"); }},
      {"sampler", [](GenerateRequest& r) { r.set_sampler(static_cast<tpdiff::v1::Sampler>(5)); }},
      {"priority", [](GenerateRequest& r) { r.set_priority(static_cast<tpdiff::v1::Priority>(5)); }},
      {"output.format", [](GenerateRequest& r) {
         r.mutable_output()->set_format(static_cast<tpdiff::v1::VideoFormat>(9)); }},
      {"max_queue_wait", [](GenerateRequest& r) { r.mutable_max_queue_wait()->set_seconds(-1); }},
  };
  for (const Case& c : cases) {
    GenerateRequest request = ValidRequest();
    c.mutate(request);
    absl::StatusOr<tpdiff::v1::Job> job = Submit(request);
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(job.status().message()), ::testing::StartsWith(c.field + ": "));
    grpc::ClientContext context;
    StreamResult stream = ReadAll(api_->Generate(&context, request).get());
    EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(stream.status.error_message(), ::testing::StartsWith(c.field + ": "));
    EXPECT_TRUE(stream.events.empty());
  }
}

// Client input is never echoed whole: a default gRPC client refuses a status whose message
// exceeds its 8 KiB metadata limit, and would see that instead of the server's answer.
TEST_F(ServerIntegrationTest, OversizedIdentifiersAreRejectedWithShortMessages) {
  StartServer();
  AddWorker("w1", /*auto_run=*/true);
  const std::string huge(1 << 20, 'x');
  {
    grpc::ClientContext context;
    tpdiff::v1::GetJobRequest request;
    request.set_job_id(huge);
    tpdiff::v1::Job job;
    const grpc::Status status = api_->GetJob(&context, request, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), "job_id: 1048576 bytes exceeds the maximum of 64");
  }
  {
    grpc::ClientContext context;
    tpdiff::v1::CancelJobRequest request;
    request.set_job_id(huge);
    tpdiff::v1::Job job;
    EXPECT_EQ(api_->CancelJob(&context, request, &job).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    tpdiff::v1::WatchJobRequest request;
    request.set_job_id(huge);
    StreamResult stream = ReadAll(api_->WatchJob(&context, request).get());
    EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(stream.status.error_message(), ::testing::StartsWith("job_id: "));
  }
  GenerateRequest request = ValidRequest();
  request.set_model(huge);
  absl::StatusOr<tpdiff::v1::Job> job = Submit(request);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(job.status().message()),
              ::testing::StartsWith("model: unknown model \"" + std::string(64, 'x') +
                                    "... (1048576 bytes)\""));
  EXPECT_LT(job.status().message().size(), 300u);
}

TEST_F(ServerIntegrationTest, HealthFlipsToNotServingOnDrainAndShutdown) {
  StartServer();
  EXPECT_EQ(Health(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(kReadinessService), grpc::health::v1::HealthCheckResponse::NOT_SERVING)
      << "no worker yet";
  TestWorker& worker = AddWorker("w1", /*auto_run=*/true);
  ASSERT_TRUE(WaitFor([&] {
    return Health(kReadinessService) == grpc::health::v1::HealthCheckResponse::SERVING;
  }));

  // Watch liveness across the shutdown.
  grpc::ClientContext watch_context;
  grpc::health::v1::HealthCheckRequest watch_request;
  auto watch = health_->Watch(&watch_context, watch_request);
  grpc::health::v1::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  server_->Drain();
  EXPECT_EQ(Health(kReadinessService), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Submit(ValidRequest()).status().code(), absl::StatusCode::kUnavailable);

  std::thread shutdown([&] { server_->Shutdown(absl::Seconds(5)); });
  bool saw_not_serving = false;
  while (watch->Read(&update)) {
    if (update.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING) {
      saw_not_serving = true;
      watch_context.TryCancel();
    }
  }
  watch->Finish();
  shutdown.join();
  EXPECT_TRUE(saw_not_serving);
  EXPECT_TRUE(worker.WaitForDrain());
}

TEST_F(ServerIntegrationTest, ShutdownCancelsRunningJobsAfterTheGracePeriod) {
  StartServer();
  TestWorker& worker = AddWorker("w1", /*auto_run=*/false);
  grpc::ClientContext context;
  auto reader = api_->Generate(&context, ValidRequest());
  std::vector<tpdiff::worker::v1::Assign> assigns = worker.WaitForAssigns(1);
  ASSERT_EQ(assigns.size(), 1u);
  worker.SendStarted(assigns[0]);
  std::thread shutdown([&] { server_->Shutdown(absl::Milliseconds(200)); });
  StreamResult result = ReadAll(reader.get());
  shutdown.join();
  ASSERT_FALSE(result.events.empty());
  ASSERT_TRUE(result.events.back().has_cancelled());
  EXPECT_EQ(result.events.back().cancelled().source(), "shutdown");
  EXPECT_TRUE(worker.WaitForCancel(assigns[0].job_id()));
}

TEST_F(ServerIntegrationTest, MetricsShowStageDurationsAfterAJob) {
  StartServer(/*queue_capacity=*/64, /*with_metrics=*/true);
  AddWorker("w1", /*auto_run=*/true);
  grpc::ClientContext context;
  StreamResult result = ReadAll(api_->Generate(&context, ValidRequest()).get());
  ASSERT_TRUE(result.status.ok());
  const std::string metrics = ScrapeMetrics();
  for (const char* stage : {"1", "2", "3"}) {
    EXPECT_THAT(metrics, HasSubstr(std::string("tpdiff_stage_duration_seconds_count{stage=\"") +
                                   stage + "\"} 1"));
  }
  EXPECT_THAT(metrics, HasSubstr("tpdiff_requests_total{code=\"OK\",method=\"Generate\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("tpdiff_jobs_total{outcome=\"completed\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("tpdiff_frames_generated_total 16"));
  EXPECT_THAT(metrics, HasSubstr("tpdiff_workers{state=\"serving\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("tpdiff_queue_depth{priority=\"standard\"} 0"));
  EXPECT_THAT(metrics, HasSubstr("tpdiff_job_duration_seconds_bucket{le=\"1200\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("tpdiff_time_to_first_preview_seconds_count 1"));
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr(result.events[0].job_id())));
  // The stream's gauge falls in the reactor's OnDone, which may run after the client has
  // read the final status (seen under TSan): wait for it rather than read it once.
  EXPECT_TRUE(WaitFor([&] {
    return ScrapeMetrics().find("tpdiff_active_streams 0") != std::string::npos;
  })) << ScrapeMetrics();
}

}  // namespace
}  // namespace tpdiff::server
