// Fault tests of front replicas sharing one Redis (--state, docs/scale-out.md): real
// tpdiff-server processes, one real tpdiff-worker dialling them through one gRPC target that
// lists every front (it connects to the first that answers, as behind a Service), and a real
// redis-server. Each test counts the jobs it got accepted as completed, lost (no completed
// event) and duplicated (more than one completed event, or one request id giving two jobs),
// prints them as "[scale-out] ..." and requires lost = duplicated = 0. The tiny model keeps a
// job under a second; leases are short (--lease-timeout=2s) so a dead front is noticed fast.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "front_process.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "job_client.h"
#include "redis_server.h"
#include "tpdiff/server/tenants.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

extern char** environ;

namespace tpdiff::load {
namespace {

namespace fs = std::filesystem;

// A tpdiff-worker process; killed (SIGKILL) by the destructor.
class WorkerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(const std::string& target,
                                                             const std::string& models_dir,
                                                             int slots) {
    std::unique_ptr<WorkerProcess> worker(new WorkerProcess());
    std::vector<std::string> args = {TPDIFF_WORKER_BINARY, "--server=" + target,
                                     "--models_dir=" + models_dir, "--insecure", "--threads=1",
                                     absl::StrCat("--slots=", slots)};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    const int spawned = posix_spawn(&worker->pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) return absl::InternalError("posix_spawn tpdiff-worker failed");
    return worker;
  }
  ~WorkerProcess() {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }

 private:
  WorkerProcess() = default;
  pid_t pid_ = 0;
};

// The fronts' flags: shared state, short leases and heartbeats.
std::vector<std::string> ReplicaArgs(const std::string& state_url) {
  return {"--state=" + state_url, "--lease_timeout=2s", "--heartbeat_interval=300ms"};
}

class ScaleOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> models = WriteTinyModelsDir();
    ASSERT_TRUE(models.ok()) << models.status();
    models_dir_ = *models;
  }
  void TearDown() override {
    worker_.reset();
    fronts_.clear();
    redis_.reset();
    std::error_code error;
    fs::remove_all(models_dir_, error);
  }

  // Redis, `count` fronts on it, and one worker with `slots` slots dialling the fronts in
  // `worker_order` (indexes), so it connects to the first.
  void StartCluster(int count, std::vector<int> worker_order, int slots = 1,
                    testing::RedisServerOptions redis_options = {},
                    std::vector<std::string> more_args = {}) {
    absl::StatusOr<std::unique_ptr<testing::RedisServer>> redis =
        testing::RedisServer::Start(redis_options);
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    for (int i = 0; i < count; ++i) {
      FrontOptions options;
      options.server_binary = TPDIFF_SERVER_BINARY;
      options.worker_binary = TPDIFF_WORKER_BINARY;
      options.models_dir = models_dir_;
      options.local_workers = 0;
      options.extra_args = ReplicaArgs(redis_->url());
      options.extra_args.insert(options.extra_args.end(), more_args.begin(), more_args.end());
      absl::StatusOr<std::unique_ptr<FrontProcess>> front =
          FrontProcess::Start(options, absl::Seconds(30));
      ASSERT_TRUE(front.ok()) << front.status();
      fronts_.push_back(*std::move(front));
      stubs_.push_back(api::VideoGeneration::NewStub(
          grpc::CreateChannel(fronts_.back()->target(), grpc::InsecureChannelCredentials())));
    }
    std::vector<std::string> addresses;
    for (int i : worker_order) addresses.push_back(fronts_[i]->target());
    absl::StatusOr<std::unique_ptr<WorkerProcess>> worker = WorkerProcess::Start(
        absl::StrCat("ipv4:", absl::StrJoin(addresses, ",")), models_dir_, slots);
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = *std::move(worker);
    ASSERT_TRUE(fronts_[worker_order[0]]->WaitForMetric("tpdiff_workers{state=\"serving\"}", 1,
                                                        absl::Seconds(60)))
        << fronts_[worker_order[0]]->Log();
  }

  void KillFront(int i) {
    fronts_[i]->Signal(SIGKILL);
    fronts_[i]->Wait(absl::Seconds(10));
  }

  std::unique_ptr<testing::RedisServer> redis_;
  std::string models_dir_;
  std::vector<std::unique_ptr<FrontProcess>> fronts_;
  std::vector<std::unique_ptr<api::VideoGeneration::Stub>> stubs_;
  std::unique_ptr<WorkerProcess> worker_;
};

// WatchJob from after_seq to the end, appending to `events`.
grpc::Status Watch(api::VideoGeneration::Stub& stub, const std::string& job_id, int64_t after_seq,
                   std::vector<api::JobEvent>& events, absl::Duration deadline) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  api::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_after_seq(after_seq);
  auto reader = stub.WatchJob(&context, request);
  api::JobEvent event;
  while (reader->Read(&event)) events.push_back(event);
  return reader->Finish();
}

// Follows a job to its end over any front, resuming with after_seq after every broken
// stream: what a client of a Service in front of the replicas does.
std::vector<api::JobEvent> FollowToEnd(std::vector<api::VideoGeneration::Stub*> stubs,
                                       const std::string& job_id,
                                       std::vector<api::JobEvent> events = {}) {
  const absl::Time until = absl::Now() + absl::Seconds(90);
  for (size_t attempt = 0; absl::Now() < until; ++attempt) {
    auto ended = [&] {
      return !events.empty() && (events.back().has_completed() || events.back().has_failed() ||
                                 events.back().has_cancelled());
    };
    if (ended()) break;
    const int64_t after = events.empty() ? 0 : events.back().seq();
    Watch(*stubs[attempt % stubs.size()], job_id, after, events, absl::Seconds(30));
    if (!ended()) absl::SleepFor(absl::Milliseconds(200));  // a real client's retry pause
  }
  return events;
}

struct Tally {
  int accepted = 0, completed = 0, lost = 0, duplicated = 0;
  std::string Line(const std::string& test) const {
    return absl::StrCat("[scale-out] ", test, ": accepted ", accepted, ", completed ", completed,
                        ", lost ", lost, ", duplicated ", duplicated);
  }
};

// Gap-free seqs from 1 and exactly one terminal event, the last.
void ExpectWholeLog(const std::vector<api::JobEvent>& events) {
  int terminal = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    terminal += events[i].has_completed() + events[i].has_failed() + events[i].has_cancelled();
  }
  EXPECT_EQ(terminal, 1);
}

void Count(const std::vector<api::JobEvent>& events, Tally& tally) {
  int completed = 0;
  for (const api::JobEvent& e : events) completed += e.has_completed();
  tally.completed += completed == 1;
  tally.lost += completed == 0;
  tally.duplicated += completed > 1;
}

// `steps` per stage, with a preview after each stage.
api::GenerateRequest SlowRequest(uint32_t steps) {
  api::GenerateRequest request = SmallRequest(steps);
  request.mutable_preview()->set_enabled(true);
  return request;
}

TEST_F(ScaleOutTest, ClientResumesOnAnotherReplicaAfterItsReplicaIsKilledAfterAPreview) {
  StartCluster(2, /*worker_order=*/{1, 0});  // worker on front 1, client on front 0
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  auto reader = stubs_[0]->Generate(&context, SlowRequest(20));
  std::vector<api::JobEvent> seen;
  api::JobEvent event;
  while (reader->Read(&event)) {
    seen.push_back(event);
    if (event.has_stage_preview()) {
      KillFront(0);  // kill -9 the client's replica
      break;
    }
  }
  const grpc::Status ended = reader->Finish();
  ASSERT_FALSE(seen.empty()) << ended.error_message();
  ASSERT_TRUE(seen.back().has_stage_preview())
      << "no preview before the stream ended: " << ended.error_message() << "; last event "
      << seen.back().ShortDebugString();
  const std::string job_id = seen.front().job_id();
  std::vector<api::JobEvent> events = FollowToEnd({stubs_[1].get()}, job_id, seen);
  ExpectWholeLog(events);
  // The replica that survived serves the same bytes for the events the dead one sent.
  std::vector<api::JobEvent> replay;
  ASSERT_TRUE(Watch(*stubs_[1], job_id, 0, replay, absl::Seconds(30)).ok());
  ASSERT_EQ(replay.size(), events.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(replay[i].SerializeAsString(), seen[i].SerializeAsString()) << "seq " << i + 1;
  }
  Tally tally;
  tally.accepted = 1;
  Count(events, tally);
  std::printf("%s (events before the kill %zu, after %zu)\n",
              tally.Line("client's replica killed after a preview").c_str(), seen.size(),
              events.size() - seen.size());
  EXPECT_EQ(tally.completed, 1);
  EXPECT_EQ(tally.lost, 0);
  EXPECT_EQ(tally.duplicated, 0);
}

TEST_F(ScaleOutTest, AJobCompletesWhenItsWorkersReplicaIsKilledMidStage) {
  StartCluster(2, /*worker_order=*/{0, 1});  // worker on front 0, client on front 1
  const absl::Time start = absl::Now();
  Outcome out = Generate(*stubs_[1], SlowRequest(30), absl::Seconds(90),
                         [&](const api::JobEvent& e) {
                           if (e.has_progress() && e.progress().step() == 2 && fronts_[0] != nullptr) {
                             KillFront(0);  // kill -9 the worker's replica mid-stage
                           }
                           return true;
                         });
  EXPECT_EQ(out.code, grpc::StatusCode::OK) << out.message;
  std::vector<api::JobEvent> events = FollowToEnd({stubs_[1].get()}, out.job_id);
  ExpectWholeLog(events);
  Tally tally;
  tally.accepted = 1;
  Count(events, tally);
  std::printf("%s (re-queued %d times, %.1f s in all)\n",
              tally.Line("worker's replica killed mid-stage").c_str(), out.requeued,
              absl::ToDoubleSeconds(absl::Now() - start));
  EXPECT_GE(out.requeued, 1);
  EXPECT_EQ(tally.completed, 1);
  EXPECT_EQ(tally.lost, 0);
  EXPECT_EQ(tally.duplicated, 0);
}

TEST_F(ScaleOutTest, AReplicaStoppedWithSigtermHandsItsWorkerToAnother) {
  StartCluster(2, /*worker_order=*/{0, 1});  // worker on front 0
  Outcome running;
  std::thread client([&] {
    running = Generate(*stubs_[1], SlowRequest(20), absl::Seconds(60),
                       [&](const api::JobEvent& e) {
                         if (e.has_progress() && e.progress().step() == 1 &&
                             e.progress().stage() == 1) {
                           fronts_[0]->Signal(SIGTERM);  // a rolling update
                         }
                         return true;
                       });
  });
  client.join();
  EXPECT_EQ(fronts_[0]->Wait(absl::Seconds(40)), 0) << fronts_[0]->Log();
  // The worker was not told to drain: it moved to the other front and serves new jobs.
  ASSERT_TRUE(fronts_[1]->WaitForMetric("tpdiff_workers{state=\"serving\"}", 1, absl::Seconds(30)));
  Outcome next = Generate(*stubs_[1], SmallRequest(1), absl::Seconds(30));
  Tally tally;
  tally.accepted = 2;
  Count(FollowToEnd({stubs_[1].get()}, running.job_id), tally);
  Count(FollowToEnd({stubs_[1].get()}, next.job_id), tally);
  std::printf("%s\n", tally.Line("worker's replica stopped with SIGTERM").c_str());
  EXPECT_EQ(tally.completed, 2);
  EXPECT_EQ(tally.lost, 0);
  EXPECT_EQ(tally.duplicated, 0);
}

TEST_F(ScaleOutTest, CancelOnAnotherReplicaStopsTheJobOnItsWorker) {
  StartCluster(2, /*worker_order=*/{0, 1}, /*slots=*/1);  // worker on front 0
  // How long the job takes when nobody cancels it.
  const absl::Time full_start = absl::Now();
  Outcome full = Generate(*stubs_[1], SlowRequest(100), absl::Seconds(60));
  ASSERT_EQ(full.completed, 1) << full.message;
  const absl::Duration full_time = absl::Now() - full_start;
  api::Job long_job;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stubs_[1]->SubmitJob(&context, SlowRequest(100), &long_job).ok());
  }
  std::vector<api::JobEvent> events;
  absl::Time cancelled_at;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    api::WatchJobRequest request;
    request.set_job_id(long_job.job_id());
    auto reader = stubs_[1]->WatchJob(&context, request);
    api::JobEvent event;
    bool cancelled = false;
    while (reader->Read(&event)) {
      events.push_back(event);
      if (event.has_progress() && !cancelled) {
        cancelled = true;
        grpc::ClientContext cancel_context;
        api::CancelJobRequest cancel;
        cancel.set_job_id(long_job.job_id());
        api::Job job;
        ASSERT_TRUE(stubs_[1]->CancelJob(&cancel_context, cancel, &job).ok());
        EXPECT_EQ(job.state(), api::JOB_STATE_CANCELLED);
        cancelled_at = absl::Now();
      }
    }
    EXPECT_TRUE(reader->Finish().ok());
  }
  ExpectWholeLog(events);
  ASSERT_TRUE(events.back().has_cancelled());
  // The worker's one slot is free again only once it stopped the job: a short job starts.
  Outcome next = Generate(*stubs_[0], SmallRequest(1), absl::Seconds(30));
  const absl::Duration freed = absl::Now() - cancelled_at;
  EXPECT_EQ(next.code, grpc::StatusCode::OK) << next.message;
  EXPECT_EQ(next.completed, 1);
  std::printf("[scale-out] cancel on another replica: cancelled after %zu events; the next job "
              "completed %.0f ms after the cancel (the job uncancelled: %.0f ms)\n",
              events.size(), absl::ToDoubleMilliseconds(freed),
              absl::ToDoubleMilliseconds(full_time));
  // Had the worker run on, its one slot would have been busy for most of full_time.
  EXPECT_LT(freed, full_time / 2);
}

TEST_F(ScaleOutTest, ATenantsBurstSplitAcrossReplicasAdmitsExactlyTheBurst) {
  const std::string tenants = (fs::path(models_dir_) / "tenants.json").string();
  {
    std::ofstream out(tenants);
    out << R"({"tenants": [{"name": "acme", "api_key_sha256": [")"
        << server::Sha256Hex("burst-key")
        << R"("], "requests_per_second": 0.001, "burst": 10, "max_queued_jobs": 100}]})";
  }
  StartCluster(3, /*worker_order=*/{0, 1, 2}, /*slots=*/2, {},
               {"--auth=api-key", "--tenants_file=" + tenants});
  std::set<std::string> jobs;
  int admitted = 0, limited = 0;
  for (int i = 0; i < 30; ++i) {  // round robin, as a Service spreads connections
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer burst-key");
    api::Job response;
    grpc::Status status = stubs_[i % 3]->SubmitJob(&context, SmallRequest(1), &response);
    if (status.ok()) {
      ++admitted;
      jobs.insert(response.job_id());
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_NE(status.error_message().find("rate limit: tenant \"acme\""), std::string::npos)
          << status.error_message();
      ++limited;
    }
  }
  std::printf("[scale-out] burst of 30 over 3 replicas, burst 10: admitted %d, limited %d, "
              "distinct jobs %zu\n",
              admitted, limited, jobs.size());
  EXPECT_EQ(admitted, 10);
  EXPECT_EQ(jobs.size(), 10u);  // no duplicate
}

TEST_F(ScaleOutTest, NoAcceptedJobIsLostWhenRedisRestartsMidLoad) {
  testing::RedisServerOptions aof;
  aof.append_only = true;
  StartCluster(2, /*worker_order=*/{0, 1}, /*slots=*/2, aof);
  std::vector<api::VideoGeneration::Stub*> stubs = {stubs_[0].get(), stubs_[1].get()};
  std::map<std::string, std::string> job_by_request;  // request id -> job id
  int rejected_during_outage = 0;
  auto submit = [&](int i) -> grpc::Status {
    api::GenerateRequest request = SmallRequest(3);
    request.set_request_id(absl::StrCat("load-", i));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    api::Job response;
    grpc::Status status = stubs[i % 2]->SubmitJob(&context, request, &response);
    if (status.ok()) {
      auto [it, inserted] = job_by_request.emplace(request.request_id(), response.job_id());
      EXPECT_EQ(it->second, response.job_id()) << "one request id, two jobs";
    }
    return status;
  };
  constexpr int kJobs = 24;
  for (int i = 0; i < kJobs / 2; ++i) ASSERT_TRUE(submit(i).ok()) << i;
  redis_->Kill();
  // While Redis is down: new work is refused naming the cause, readiness says NOT_SERVING.
  for (int i = kJobs / 2; i < kJobs / 2 + 3; ++i) {
    grpc::Status status = submit(i);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_NE(status.error_message().find("state: redis at " + redis_->socket_path() +
                                          " unreachable"),
              std::string::npos)
        << status.error_message();
    ++rejected_during_outage;
  }
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(fronts_[1]->target(), grpc::InsecureChannelCredentials()));
  auto serving = [&] {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service("tpdiff.v1.VideoGeneration");
    grpc::health::v1::HealthCheckResponse response;
    return health->Check(&context, request, &response).ok() &&
           response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  };
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (serving() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(serving()) << "readiness stayed SERVING with Redis down";
  ASSERT_TRUE(redis_->Restart().ok());
  // The fronts recover by themselves; the refused submissions are retried.
  for (int i = kJobs / 2; i < kJobs; ++i) {
    const absl::Time retry_until = absl::Now() + absl::Seconds(30);
    grpc::Status status;
    while (!(status = submit(i)).ok() && absl::Now() < retry_until) {
      absl::SleepFor(absl::Milliseconds(200));  // a client's retry pause
    }
    ASSERT_TRUE(status.ok()) << i << ": " << status.error_message();
  }
  Tally tally;
  tally.accepted = static_cast<int>(job_by_request.size());
  for (const auto& [request_id, job_id] : job_by_request) {
    std::vector<api::JobEvent> events = FollowToEnd(stubs, job_id);
    ExpectWholeLog(events);
    Count(events, tally);
  }
  std::printf("%s (refused while Redis was down: %d, retried)\n",
              tally.Line("Redis restarted mid-load (AOF)").c_str(), rejected_during_outage);
  EXPECT_EQ(tally.accepted, kJobs);
  EXPECT_EQ(tally.completed, kJobs);
  EXPECT_EQ(tally.lost, 0);
  EXPECT_EQ(tally.duplicated, 0);
}

}  // namespace
}  // namespace tpdiff::load
