// Load and fault tests against the real tpdiff-server binary with local tpdiff-worker children
// on loopback and the tiny random model (8 frames, two stages of one step), so a job takes a
// fraction of a second. Everything is bounded: stream counts, per-call deadlines, timeouts.
// Figures (streams, rejections, throughput, the front's RSS) are printed as "[load] ..." lines.
//
// Environment: TPDIFF_LOAD_STREAMS overrides the concurrent stream count (default 240).

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "front_process.h"
#include "job_client.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

namespace tpdiff::load {
namespace {

namespace api = ::tpdiff::v1;

int StreamCount() {
  int n = 0;
  const char* env = std::getenv("TPDIFF_LOAD_STREAMS");
  return env != nullptr && absl::SimpleAtoi(env, &n) && n > 0 ? n : 240;
}

pid_t PidOfWorkerId(const std::string& worker_id) {  // local workers are "<host>-<pid>"
  int pid = 0;
  const size_t dash = worker_id.rfind('-');
  if (dash == std::string::npos || !absl::SimpleAtoi(worker_id.substr(dash + 1), &pid)) return 0;
  return pid;
}

// Samples the front's RSS every 50 ms while alive; Peak() is the largest seen.
class RssSampler {
 public:
  explicit RssSampler(const FrontProcess& front) : front_(front) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        peak_.store(std::max(peak_.load(), front_.RssKb()));
        absl::SleepFor(absl::Milliseconds(50));
      }
    });
  }
  ~RssSampler() {
    stop_.store(true);
    thread_.join();
  }
  long Peak() const { return peak_.load(); }

 private:
  const FrontProcess& front_;
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_{0};
  std::thread thread_;
};

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = WriteTinyModelsDir();
    ASSERT_TRUE(dir.ok()) << dir.status();
    models_dir_ = *dir;
  }
  void TearDown() override {
    front_.reset();
    std::filesystem::remove_all(models_dir_);
  }

  void StartFront(std::vector<std::string> extra_args, int workers = 2) {
    FrontOptions options;
    options.server_binary = TPDIFF_SERVER_BINARY;
    options.worker_binary = TPDIFF_WORKER_BINARY;
    options.models_dir = models_dir_;
    options.local_workers = workers;
    options.extra_args = std::move(extra_args);
    absl::StatusOr<std::unique_ptr<FrontProcess>> front =
        FrontProcess::Start(options, absl::Seconds(60));
    ASSERT_TRUE(front.ok()) << front.status();
    front_ = *std::move(front);
    channel_ = grpc::CreateChannel(front_->target(), grpc::InsecureChannelCredentials());
    stub_ = api::VideoGeneration::NewStub(channel_);
  }

  // A client with a TCP connection of its own (HTTP/2 flow control is per connection).
  std::unique_ptr<api::VideoGeneration::Stub> NewClient() const {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return api::VideoGeneration::NewStub(
        grpc::CreateCustomChannel(front_->target(), grpc::InsecureChannelCredentials(), args));
  }

  // `count` concurrent Generate streams, each on its own channel (like separate clients).
  std::vector<Outcome> Wave(int count, const api::GenerateRequest& request) {
    std::vector<Outcome> outcomes(count);
    std::vector<std::thread> threads;
    threads.reserve(count);
    for (int i = 0; i < count; ++i) {
      threads.emplace_back([&, i] { outcomes[i] = Generate(*NewClient(), request); });
    }
    for (std::thread& t : threads) t.join();
    return outcomes;
  }

  std::string models_dir_;
  std::unique_ptr<FrontProcess> front_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<api::VideoGeneration::Stub> stub_;
};

// >= 200 concurrent Generate streams, twice: rejections are only RESOURCE_EXHAUSTED (before
// any event), every accepted job completes exactly once, and the front's RSS settles.
TEST_F(LoadTest, ConcurrentGenerateStreamsCompleteExactlyOnceWithBoundedMemory) {
  StartFront({"--queue_capacity=150", "--job_store_bytes=33554432"});
  for (int i = 0; i < 4; ++i) {  // warm-up: first jobs load code paths and allocator pools
    ASSERT_EQ(Generate(*stub_, SmallRequest()).completed, 1);
  }
  const long rss_start = front_->RssKb();
  const int streams = StreamCount();
  std::set<std::string> job_ids;
  long rss_after_wave[2] = {0, 0};
  for (int wave = 0; wave < 2; ++wave) {
    RssSampler sampler(*front_);
    const absl::Time start = absl::Now();
    const std::vector<Outcome> outcomes = Wave(streams, SmallRequest());
    const absl::Duration took = absl::Now() - start;
    int accepted = 0, rejected = 0;
    std::vector<double> latencies;
    std::map<std::string, int> reasons;
    for (const Outcome& o : outcomes) {
      if (o.code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++rejected;
        // Reasons without their numbers, to count kinds: "queue for priority ... is full".
        ++reasons[o.message.substr(0, o.message.find_first_of("0123456789"))];
        EXPECT_EQ(o.events, 0) << "rejected after events: " << o.message;
        continue;
      }
      ASSERT_EQ(o.code, grpc::StatusCode::OK) << o.code << " " << o.message;
      ++accepted;
      EXPECT_EQ(o.completed, 1) << o.job_id;
      EXPECT_EQ(o.failed + o.cancelled, 0) << o.job_id;
      EXPECT_TRUE(o.gapless) << o.job_id;
      EXPECT_TRUE(job_ids.insert(o.job_id).second) << "job id seen twice: " << o.job_id;
      latencies.push_back(absl::ToDoubleSeconds(o.latency));
    }
    ASSERT_GT(accepted, 0);
    std::sort(latencies.begin(), latencies.end());
    rss_after_wave[wave] = front_->RssKb();
    std::printf(
        "[load] wave %d: %d streams, %d accepted (completed exactly once), %d RESOURCE_EXHAUSTED, "
        "%.1f s, %.1f jobs/s, latency p50 %.2f s p99 %.2f s, front RSS peak %ld KiB after %ld "
        "KiB\n",
        wave + 1, streams, accepted, rejected, absl::ToDoubleSeconds(took),
        accepted / absl::ToDoubleSeconds(took), latencies[latencies.size() / 2],
        latencies[latencies.size() * 99 / 100], sampler.Peak(), rss_after_wave[wave]);
    for (const auto& [reason, count] : reasons) {
      std::printf("[load]   RESOURCE_EXHAUSTED x%d: %s...\n", count, reason.c_str());
    }
  }
  // Every accepted job is completed exactly once in the front's own log, too.
  int checked = 0;
  for (const std::string& id : job_ids) {
    if (++checked > 40) break;  // a sample: WatchJob replays are cheap but not free
    const Outcome log = WatchAll(*stub_, id);
    EXPECT_EQ(log.completed, 1) << id;
    EXPECT_EQ(log.failed + log.cancelled, 0) << id;
  }
  EXPECT_EQ(front_->MetricValue("tpdiff_jobs_total{outcome=\"completed\"}"),
            static_cast<double>(job_ids.size() + 4));
  // The server ends a stream's bookkeeping in OnDone, which may run just after the client has
  // read the last event: wait for the gauge rather than read it once.
  EXPECT_TRUE(front_->WaitForMetricAtMost("tpdiff_active_streams", 0, absl::Seconds(10)))
      << "streams still open: " << front_->MetricValue("tpdiff_active_streams");
  std::printf("[load] front RSS: %ld KiB before, %ld KiB after wave 1, %ld KiB after wave 2\n",
              rss_start, rss_after_wave[0], rss_after_wave[1]);
  // The second wave reuses what the first grew (gRPC and allocator pools); a leak per stream
  // or per job would grow it by the same amount again.
  EXPECT_LT(rss_after_wave[1] - rss_after_wave[0], 32 * 1024) << "front RSS kept growing";
  EXPECT_LT(rss_after_wave[1] - rss_start, 256 * 1024);
}

// A long job (two stages of 100 steps) whose worker gets `signal` once it is past step 2 of
// its first stage; returns what the client's Generate stream saw.
Outcome RunWithWorkerFault(api::VideoGeneration::Stub& stub, int signal, pid_t* victim) {
  std::string worker;
  return Generate(stub, SmallRequest(100), absl::Seconds(100), [&](const api::JobEvent& e) {
    if (e.has_started()) worker = e.started().worker_id();
    if (*victim == 0 && e.has_progress() && e.progress().step() >= 2) {
      *victim = PidOfWorkerId(worker);
      EXPECT_GT(*victim, 0) << worker;
      if (*victim > 0) kill(*victim, signal);
    }
    return true;
  });
}

// kill -9 of the worker running a job, mid-stage: the job is re-queued and completed by the
// other worker; the client's stream carries on (Requeued, Started elsewhere, Completed).
TEST_F(LoadTest, KilledWorkerMidStageJobCompletesOnAnotherWorker) {
  StartFront({"--heartbeat_interval=200ms", "--lease_timeout=3s"});
  pid_t victim = 0;
  const absl::Time start = absl::Now();
  const Outcome o = RunWithWorkerFault(*stub_, SIGKILL, &victim);
  ASSERT_EQ(o.code, grpc::StatusCode::OK) << o.message;
  EXPECT_EQ(o.completed, 1);
  EXPECT_GE(o.requeued, 1);
  EXPECT_TRUE(o.gapless);
  ASSERT_GE(o.workers.size(), 2u);
  EXPECT_NE(o.workers.front(), o.workers.back());
  std::printf("[load] kill -9 of worker %d mid-stage: job completed on %s after %.1f s\n", victim,
              o.workers.back().c_str(), absl::ToDoubleSeconds(absl::Now() - start));
}

// SIGSTOP of the worker running a job: its heartbeats stop, the lease expires, the job is
// re-queued and completed by the other worker. When the stopped worker resumes, its stale
// events for the job must not add a second ending.
TEST_F(LoadTest, StoppedWorkerLosesItsLeaseAndTheJobCompletesElsewhere) {
  StartFront({"--heartbeat_interval=200ms", "--lease_timeout=2s"});
  pid_t victim = 0;
  const absl::Time start = absl::Now();
  const Outcome o = RunWithWorkerFault(*stub_, SIGSTOP, &victim);
  const double took = absl::ToDoubleSeconds(absl::Now() - start);
  ASSERT_GT(victim, 0);
  kill(victim, SIGCONT);
  ASSERT_EQ(o.code, grpc::StatusCode::OK) << o.message;
  EXPECT_EQ(o.completed, 1);
  EXPECT_GE(o.requeued, 1);
  ASSERT_GE(o.workers.size(), 2u);
  EXPECT_NE(o.workers.front(), o.workers.back());
  // The resumed worker reconnects (or is told its job is gone) and serves new jobs.
  EXPECT_TRUE(front_->WaitForMetric("tpdiff_workers{state=\"serving\"}", 2, absl::Seconds(30)));
  EXPECT_EQ(Generate(*stub_, SmallRequest()).completed, 1);
  const Outcome log = WatchAll(*stub_, o.job_id);
  EXPECT_EQ(log.completed, 1);
  EXPECT_EQ(log.failed + log.cancelled, 0);
  std::printf("[load] SIGSTOP of worker %d mid-stage: lease expired, job completed on %s after "
              "%.1f s\n", victim, o.workers.back().c_str(), took);
}

// Clients that go away mid-stream cancel exactly their jobs; clients that stop reading do not
// block the workers (other jobs keep completing) and do not grow the front's memory without
// bound: a stream keeps one event in flight, the events wait in the bounded job store.
TEST_F(LoadTest, VanishingAndStalledClientsNeitherBlockWorkersNorGrowMemory) {
  StartFront({"--queue_capacity=200", "--job_store_bytes=67108864"});
  ASSERT_EQ(Generate(*stub_, SmallRequest()).completed, 1);
  const long rss_start = front_->RssKb();
  RssSampler sampler(*front_);

  // Large results (8 frames upscaled 16x to 512x512 MP4) make slow readers matter.
  api::GenerateRequest big = SmallRequest();
  big.mutable_output()->set_scale(16);
  big.mutable_preview()->set_enabled(true);
  big.set_cancel_on_disconnect(false);

  // Stalled readers: read the first event, then nothing until their jobs have completed.
  constexpr int kStalled = 24;
  std::atomic<int> stalled_ready{0};
  absl::Notification resume;
  std::vector<Outcome> stalled(kStalled);
  std::vector<std::string> stalled_ids(kStalled);  // written before stalled_ready counts it
  std::vector<std::thread> threads;
  for (int i = 0; i < kStalled; ++i) {
    threads.emplace_back([&, i] {
      bool first = true;
      stalled[i] = Generate(*NewClient(), big, absl::Seconds(100), [&, i](const api::JobEvent& e) {
        if (first) {
          first = false;
          stalled_ids[i] = e.job_id();
          stalled_ready.fetch_add(1);
          resume.WaitForNotificationWithTimeout(absl::Seconds(80));
        } else {
          absl::SleepFor(absl::Milliseconds(2));  // then a slow reader
        }
        return true;
      });
    });
  }
  // Vanishing clients: go away after their first progress event (or, if queued long, after
  // the Queued event) with cancel_on_disconnect (the default).
  constexpr int kVanishing = 24;
  std::vector<Outcome> vanished(kVanishing);
  for (int i = 0; i < kVanishing; ++i) {
    threads.emplace_back([&, i] {
      vanished[i] = Generate(*NewClient(), SmallRequest(20), absl::Seconds(100),
                             [i](const api::JobEvent& e) {
                               return i % 2 == 0 ? !e.has_progress() : !e.has_queued();
                             });
    });
  }
  // Meanwhile ordinary clients are served.
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (stalled_ready.load() < kStalled && absl::Now() < until) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(stalled_ready.load(), kStalled);
  const absl::Time normal_start = absl::Now();
  for (int i = 0; i < 8; ++i) {
    const Outcome o = Generate(*stub_, SmallRequest());
    ASSERT_EQ(o.code, grpc::StatusCode::OK) << o.message;
    EXPECT_EQ(o.completed, 1);
  }
  const double normal_seconds = absl::ToDoubleSeconds(absl::Now() - normal_start);
  // The stalled clients' jobs complete although nobody reads them.
  for (int i = 0; i < kStalled; ++i) {
    const std::string& id = stalled_ids[i];
    api::JobState state = api::JOB_STATE_UNSPECIFIED;
    const absl::Time job_until = absl::Now() + absl::Seconds(60);
    while (!Finished(state = GetState(*stub_, id)) && absl::Now() < job_until) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_EQ(state, api::JOB_STATE_COMPLETED) << id;
  }
  const long rss_stalled = front_->RssKb();
  resume.Notify();
  for (std::thread& t : threads) t.join();

  for (const Outcome& o : stalled) {
    EXPECT_EQ(o.code, grpc::StatusCode::OK) << o.message;
    EXPECT_EQ(o.completed, 1) << o.job_id;
    EXPECT_TRUE(o.gapless) << o.job_id;
  }
  int cancelled = 0;
  for (const Outcome& o : vanished) {
    EXPECT_EQ(o.code, grpc::StatusCode::CANCELLED) << o.message;
    ASSERT_FALSE(o.job_id.empty());
    // The disconnect cancels exactly that job (unless it had already finished).
    api::JobState state = api::JOB_STATE_UNSPECIFIED;
    const absl::Time job_until = absl::Now() + absl::Seconds(30);
    while (!Finished(state = GetState(*stub_, o.job_id)) && absl::Now() < job_until) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_TRUE(state == api::JOB_STATE_CANCELLED || state == api::JOB_STATE_COMPLETED) << state;
    if (state == api::JOB_STATE_CANCELLED) {
      ++cancelled;
      EXPECT_EQ(WatchAll(*stub_, o.job_id).cancel_source, "disconnect");
    }
  }
  EXPECT_GT(cancelled, kVanishing / 2);
  EXPECT_TRUE(front_->WaitForMetric("tpdiff_workers{state=\"serving\"}", 2, absl::Seconds(10)));
  EXPECT_TRUE(front_->WaitForMetricAtMost("tpdiff_active_streams", 0, absl::Seconds(10)))
      << "streams still open: " << front_->MetricValue("tpdiff_active_streams");
  const long rss_end = front_->RssKb();
  std::printf("[load] %d stalled + %d vanishing clients: 8 other jobs took %.1f s; %d cancelled by "
              "disconnect; front RSS %ld KiB before, %ld KiB while stalled, peak %ld KiB, %ld KiB "
              "after\n", kStalled, kVanishing, normal_seconds, cancelled, rss_start, rss_stalled,
              sampler.Peak(), rss_end);
  EXPECT_LT(sampler.Peak() - rss_start, 256 * 1024);
}

// SIGTERM to the front under load: it drains (new calls are refused), lets running jobs
// finish within the grace period, cancels the rest, stops its workers and exits 0. No
// accepted job is silently lost: each stream ends with a terminal event or a non-OK status.
TEST_F(LoadTest, SigtermDuringLoadDrainsWithoutSilentlyLosingJobs) {
  StartFront({"--queue_capacity=200", "--grace_period=3s"});
  const std::vector<pid_t> workers = front_->WorkerPids();
  constexpr int kStreams = 60;
  std::vector<Outcome> outcomes(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      outcomes[i] = Generate(*NewClient(), SmallRequest(i % 3 == 0 ? 40 : 2));
    });
  }
  ASSERT_TRUE(front_->WaitForMetric("tpdiff_jobs_total{outcome=\"completed\"}", 3,
                                    absl::Seconds(60)));
  const absl::Time sigterm = absl::Now();
  front_->Signal(SIGTERM);
  const int exit_code = front_->Wait(absl::Seconds(30));
  const double exit_seconds = absl::ToDoubleSeconds(absl::Now() - sigterm);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(exit_code, 0);
  EXPECT_LT(exit_seconds, 3 + 10);

  std::map<std::string, int> endings;
  for (const Outcome& o : outcomes) {
    if (o.completed + o.failed + o.cancelled > 1) ADD_FAILURE() << "two endings: " << o.job_id;
    if (o.completed) {
      ++endings["completed"];
      EXPECT_EQ(o.code, grpc::StatusCode::OK);
    } else if (o.cancelled) {
      ++endings["cancelled:" + o.cancel_source];
    } else if (o.failed) {
      ++endings["failed"];
    } else {
      // No terminal event: only acceptable with a status that tells the client.
      EXPECT_NE(o.code, grpc::StatusCode::OK) << "stream of " << o.job_id << " ended silently";
      ++endings[absl::StrCat("status:", o.code)];
    }
  }
  std::string summary;
  for (const auto& [ending, count] : endings) absl::StrAppend(&summary, " ", ending, "=", count);
  std::printf("[load] SIGTERM under load: front exited %d after %.1f s;%s\n", exit_code,
              exit_seconds, summary.c_str());
  // The front stopped its local workers before exiting.
  const absl::Time until = absl::Now() + absl::Seconds(15);
  for (pid_t worker : workers) {
    while (kill(worker, 0) == 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(50));
    EXPECT_NE(kill(worker, 0), 0) << "worker " << worker << " outlived the front";
  }
}

}  // namespace
}  // namespace tpdiff::load
