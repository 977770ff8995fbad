#include "dispatch_bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "prometheus/registry.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/dispatcher.h"
#include "tpdiff/server/job_store.h"
#include "tpdiff/server/metrics.h"
#include "tpdiff/spec/model_info.h"
#include "tpdiff/server/model_registry.h"

ABSL_FLAG(std::string, sim_workers, "1000,5000", "simulated worker counts, one row each");
ABSL_FLAG(int, queued_jobs, 10000,
          "throughput: jobs queued behind the busy workers (one more job per worker is "
          "submitted first), then drained");
ABSL_FLAG(int, latency_jobs, 10000, "jobs submitted one at a time to free workers (latency)");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2),
          "each simulated worker's heartbeat period in the idle measurement");
ABSL_FLAG(double, idle_seconds, 5, "length of the heartbeats-only measurement");

namespace tpdiff::bench {
namespace {

using tpdiff::server::Dispatcher;
using tpdiff::server::WorkerChannel;
using tpdiff::worker::v1::DispatchMessage;
using tpdiff::worker::v1::WorkerMessage;

constexpr char kModel[] = "sim";

tpdiff::spec::ModelSpec SimModel() {
  tpdiff::v1::ModelInfo info;
  info.set_name(kModel);
  info.set_kind("builtin");
  info.set_parameterization("flow_matching");
  info.set_frames(8);
  info.set_height(16);
  info.set_width(16);
  info.set_channels(3);
  info.set_fps(8);
  for (uint32_t steps : {1, 1, 1}) info.add_default_stage_steps(steps);
  info.set_default_guidance_scale(1.0f);
  for (const char* word : {"a", "ball"}) info.add_vocabulary(word);
  return *tpdiff::spec::ModelSpecFromInfo(info);
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  return values[index];
}

struct Assignment {
  uint64_t connection;
  std::string job_id;
  uint32_t attempt;
};

// The simulated fleet. WorkerChannel::Send runs under the Dispatcher's lock, so assignments
// are only recorded there; Answer() replies from outside the lock. Single-threaded.
class Fleet {
 public:
  class Channel final : public WorkerChannel {
   public:
    Channel(Fleet& fleet, size_t index) : fleet_(fleet), index_(index) {}
    void Send(DispatchMessage message) override {
      if (!message.has_assign()) return;
      fleet_.assigned_at_[message.assign().job_id()] = absl::Now();
      fleet_.pending_.push_back(
          {fleet_.connections_[index_], message.assign().job_id(), message.assign().attempt()});
    }
    void Close(const absl::Status&) override {}

   private:
    Fleet& fleet_;
    size_t index_;
  };

  Fleet(Dispatcher& dispatcher, size_t workers) : dispatcher_(dispatcher) {
    channels_.reserve(workers);
    for (size_t i = 0; i < workers; ++i) channels_.emplace_back(*this, i);
    connections_.resize(workers);
    for (size_t i = 0; i < workers; ++i) {
      tpdiff::worker::v1::Hello hello;
      hello.set_worker_id(absl::StrCat("sim-", i));
      hello.add_models(kModel);
      hello.set_slots(1);
      connections_[i] = *dispatcher_.ConnectWorker(hello, &channels_[i]);
    }
  }

  // Answers every pending assignment with started + completed (which may assign more).
  // Returns the number of jobs completed.
  size_t Answer() {
    size_t done = 0;
    while (!pending_.empty()) {
      std::vector<Assignment> batch;
      batch.swap(pending_);
      for (const Assignment& a : batch) {
        Event(a, /*completed=*/false);
        Event(a, /*completed=*/true);
        ++done;
      }
    }
    return done;
  }

  void Heartbeat(size_t index) {
    WorkerMessage message;
    message.mutable_heartbeat()->set_free_slots(1);
    dispatcher_.OnWorkerMessage(connections_[index], message);
  }

  std::unordered_map<std::string, absl::Time>& assigned_at() { return assigned_at_; }
  size_t size() const { return connections_.size(); }

 private:
  void Event(const Assignment& a, bool completed) {
    WorkerMessage message;
    message.mutable_event()->set_job_id(a.job_id);
    message.mutable_event()->set_attempt(a.attempt);
    if (completed) {
      message.mutable_event()->mutable_event()->mutable_completed();
    } else {
      message.mutable_event()->mutable_event()->mutable_started();
    }
    dispatcher_.OnWorkerMessage(a.connection, message);
  }

  Dispatcher& dispatcher_;
  std::vector<Channel> channels_;
  std::vector<uint64_t> connections_;
  std::vector<Assignment> pending_;
  std::unordered_map<std::string, absl::Time> assigned_at_;
};

struct Front {
  explicit Front(size_t queue_capacity) {
    models.AddFromDisk(SimModel());
    tpdiff::server::DispatcherOptions options;
    options.queue_capacity = queue_capacity;
    options.lease_timeout = absl::Hours(1);  // the simulated fleet never goes silent
    dispatcher = std::make_unique<Dispatcher>(options, clock, models, store, metrics);
  }
  tpdiff::server::RealClock clock;
  prometheus::Registry registry;
  tpdiff::server::ServerMetrics metrics{registry};
  tpdiff::server::ModelRegistry models;
  tpdiff::server::InMemoryJobStore store{clock, absl::Hours(1), size_t{8} << 30};
  std::unique_ptr<Dispatcher> dispatcher;
};

tpdiff::v1::GenerateRequest Request() {
  tpdiff::v1::GenerateRequest request;
  request.set_prompt("a ball");
  return request;
}

// One job per worker plus `queued` jobs submitted at once (those wait in the queue), then
// drained. `print` false: a warm-up (allocator, caches) whose figures are not shown.
void Throughput(size_t workers, int queued, bool print = true) {
  const int jobs = static_cast<int>(workers) + queued;
  Front front(static_cast<size_t>(jobs));
  Fleet fleet(*front.dispatcher, workers);
  const double cpu0 = CpuSeconds();
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < jobs; ++i) {
    if (!front.dispatcher->Submit(Request()).ok()) {
      std::fprintf(stderr, "submit %d failed\n", i);
      return;
    }
  }
  const absl::Time submitted = absl::Now();
  const size_t done = fleet.Answer();
  const double wall = absl::ToDoubleSeconds(absl::Now() - t0);
  const double cpu = CpuSeconds() - cpu0;
  if (!print) return;
  std::printf("  throughput: %d jobs (%d queued behind the busy workers): %.0f jobs/s, %.1f us "
              "CPU per job (submit all %.2fs, drain %.2fs)\n",
              jobs, queued, done / wall,
              1e6 * cpu / done, absl::ToDoubleSeconds(submitted - t0),
              absl::ToDoubleSeconds(absl::Now() - submitted));
}

// Jobs submitted one at a time while workers are free: submit -> Assign sent.
void Latency(size_t workers, int jobs) {
  Front front(64);
  Fleet fleet(*front.dispatcher, workers);
  std::vector<double> micros;
  micros.reserve(jobs);
  const double cpu0 = CpuSeconds();
  for (int i = 0; i < jobs; ++i) {
    const absl::Time before = absl::Now();
    absl::StatusOr<tpdiff::server::Submission> s = front.dispatcher->Submit(Request());
    if (!s.ok()) {
      std::fprintf(stderr, "submit %d failed: %s\n", i, s.status().ToString().c_str());
      return;
    }
    auto it = fleet.assigned_at().find(s->job.job_id());
    if (it != fleet.assigned_at().end()) {
      micros.push_back(absl::ToDoubleMicroseconds(it->second - before));
      fleet.assigned_at().erase(it);
    }
    fleet.Answer();
  }
  const double cpu = CpuSeconds() - cpu0;
  std::printf("  latency: %zu of %d jobs assigned at submit; submit -> assign p50 %.1f us, p99 "
              "%.1f us; %.1f us CPU per job (submit, started, completed)\n",
              micros.size(), jobs, Percentile(micros, 0.5), Percentile(micros, 0.99),
              1e6 * cpu / jobs);
}

// Heartbeats only, spread evenly over each interval, plus the server's 100 ms Tick.
void Idle(size_t workers, absl::Duration interval, double seconds) {
  Front front(64);
  Fleet fleet(*front.dispatcher, workers);
  const absl::Duration tick = absl::Milliseconds(100);
  const double cpu0 = CpuSeconds();
  const absl::Time t0 = absl::Now();
  const absl::Time end = t0 + absl::Seconds(seconds);
  size_t next_worker = 0, sent = 0;
  absl::Time next_tick = t0;
  for (absl::Time slot = t0; slot < end; slot += absl::Milliseconds(10)) {
    // Heartbeats due by `slot`: workers / interval per second.
    const double due = absl::ToDoubleSeconds(slot - t0 + absl::Milliseconds(10)) *
                       workers / absl::ToDoubleSeconds(interval);
    while (sent < due) {
      fleet.Heartbeat(next_worker);
      next_worker = (next_worker + 1) % workers;
      ++sent;
    }
    if (slot >= next_tick) {
      front.dispatcher->Tick();
      next_tick += tick;
    }
    absl::SleepFor(slot + absl::Milliseconds(10) - absl::Now());
  }
  const double wall = absl::ToDoubleSeconds(absl::Now() - t0);
  const double cpu = CpuSeconds() - cpu0;
  std::printf("  idle: %zu heartbeats in %.1fs (%.0f/s) + Tick every 100 ms: %.1f%% of one core, "
              "%.1f us CPU per heartbeat\n",
              sent, wall, sent / wall, 100 * cpu / wall, 1e6 * cpu / std::max<size_t>(sent, 1));
}

}  // namespace

int RunDispatchBench() {
  std::vector<size_t> counts;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_sim_workers), ',')) {
    size_t n = 0;
    if (!absl::SimpleAtoi(part, &n) || n == 0) {
      std::fprintf(stderr, "--sim_workers: \"%s\" is not a positive count\n",
                   std::string(part).c_str());
      return 2;
    }
    counts.push_back(n);
  }
  Throughput(counts.front(), absl::GetFlag(FLAGS_queued_jobs), /*print=*/false);
  for (size_t workers : counts) {
    std::printf("%zu simulated workers, 1 slot each:\n", workers);
    Throughput(workers, absl::GetFlag(FLAGS_queued_jobs));
    Latency(workers, absl::GetFlag(FLAGS_latency_jobs));
    Idle(workers, absl::GetFlag(FLAGS_heartbeat_interval), absl::GetFlag(FLAGS_idle_seconds));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace tpdiff::bench
