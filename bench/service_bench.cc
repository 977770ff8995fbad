#include "service_bench.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "packages.h"
#include "svg_chart.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/server/redis_client.h"
#include "tpdiff/server/server_setup.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

extern char** environ;

#ifndef TPDIFF_WORKER_BINARY
#define TPDIFF_WORKER_BINARY "tpdiff-worker"
#endif

ABSL_DECLARE_FLAG(std::string, svg);     // sampler_bench.cc
ABSL_DECLARE_FLAG(std::string, device);  // sampler_bench.cc
ABSL_FLAG(std::string, worker_binary, "",
          "tpdiff-worker executable; empty = the one built with this benchmark");
ABSL_FLAG(std::string, workers, "1,2,4", "service: worker process counts, one row each (in-memory state)");
ABSL_FLAG(int, jobs, 0, "timed jobs per row (0 = 60 for service, 10 for preview)");
ABSL_FLAG(int, worker_threads, 1,
          "LibTorch threads per worker process (0 = the worker's default: all cores)");
ABSL_FLAG(std::string, network, "null",
          "service: the served network: null (TorchScript zeros_like) or a random builtin "
          "preset (tiny, cpu)");
ABSL_FLAG(int, service_frames, 8, "service: frames per video (stages get 2, 4, 8)");
ABSL_FLAG(std::string, model, "",
          "preview: model package folder; empty = a random cpu-preset package");
ABSL_FLAG(std::string, prompt, "a red circle moving right", "caption of every job");
ABSL_FLAG(std::string, preview_steps, "",
          "preview: steps per stage of every job, e.g. 2,2,2; empty = the model's default");
ABSL_FLAG(std::string, encode_modes, "inline,overlapped",
          "preview: one row per mode, each on its own worker process: inline (encoding on "
          "the sampling thread, --encode-queue-depth=0) and overlapped (the slot's encoder "
          "thread, the worker's default)");
ABSL_FLAG(std::string, redis, "",
          "service: Redis rows (--state of 1 and 2 front replicas, 1 worker): a redis:// or "
          "unix:// URL to use; empty = a redis-server on PATH started on a unix socket in the "
          "temporary folder; off = no Redis rows");

namespace tpdiff::bench {
namespace {

namespace api = ::tpdiff::v1;
namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

double SecondsSince(SteadyClock::time_point begin) {
  return std::chrono::duration<double>(SteadyClock::now() - begin).count();
}

// Nearest-rank percentile, q in [0, 1].
double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::max(1.0, std::ceil(q * v.size())));
  return v[std::min(rank, v.size()) - 1];
}

std::string Ms(double seconds) { return absl::StrFormat("%.1f ms", 1e3 * seconds); }

// One job as the client saw it, and what the worker reported doing.
struct JobSample {
  double total = 0;           // Generate sent .. Completed received (client clock)
  double first_preview = -1;  // Generate sent .. first StagePreview received
  double sampling = 0;        // worker: sum of the stage seconds (network + sampler)
  double encode = 0;          // worker: preview and result encoding
  double first_stage = 0;     // worker: seconds of stage 1
  double queue = 0;           // front + worker: admission .. the worker started the job
  std::string error;          // empty = completed

  // What the service adds: queue, dispatch, event and video streaming, request handling.
  double overhead() const { return total - sampling - encode; }
};

JobSample RunJob(api::VideoGeneration::Stub& stub, const api::GenerateRequest& request) {
  JobSample s;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  const auto begin = SteadyClock::now();
  std::unique_ptr<grpc::ClientReader<api::JobEvent>> reader = stub.Generate(&context, request);
  api::JobEvent e;
  bool completed = false;
  while (reader->Read(&e)) {
    if (e.has_stage_preview() && s.first_preview < 0) s.first_preview = SecondsSince(begin);
    if (e.has_completed()) {
      s.total = SecondsSince(begin);
      const api::Timings& t = e.completed().timings();
      for (double stage : t.stage_seconds()) s.sampling += stage;
      if (t.stage_seconds_size() > 0) s.first_stage = t.stage_seconds(0);
      s.encode = t.encode_seconds();
      s.queue = t.queue_seconds();
      completed = true;
    }
    if (e.has_failed()) s.error = e.failed().message();
    if (e.has_cancelled()) s.error = "cancelled: " + e.cancelled().source();
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) s.error = absl::StrCat("Generate: ", status.error_message());
  if (s.error.empty() && !completed) s.error = "stream ended without Completed";
  return s;
}

// Starts `args` (args[0] searched on PATH) with stdout and stderr to `log`.
absl::StatusOr<pid_t> Spawn(std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  if (rc != 0) {
    return absl::NotFoundError(absl::StrCat("cannot run ", args[0], ": ", std::strerror(rc)));
  }
  return pid;
}

// A redis-server without persistence on a unix socket in `dir`, for the Redis rows.
class LocalRedis {
 public:
  static absl::StatusOr<std::unique_ptr<LocalRedis>> Start(const std::string& dir) {
    auto redis = std::unique_ptr<LocalRedis>(new LocalRedis);
    redis->socket_ = dir + "/redis.sock";
    absl::StatusOr<pid_t> pid =
        Spawn({"redis-server", "--port", "0", "--unixsocket", redis->socket_, "--dir", dir,
               "--save", "", "--appendonly", "no"},
              dir + "/redis.log");
    if (!pid.ok()) return pid.status();
    redis->pid_ = *pid;
    absl::StatusOr<server::RedisAddress> address = server::ParseRedisUrl(redis->url());
    if (!address.ok()) return address.status();
    server::RedisPool pool(*address, 1);
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (!pool.Ping().ok()) {
      if (absl::Now() > until) return absl::DeadlineExceededError("redis-server did not answer");
      absl::SleepFor(absl::Milliseconds(20));
    }
    return redis;
  }
  ~LocalRedis() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  std::string url() const { return "unix://" + socket_; }

 private:
  LocalRedis() = default;
  pid_t pid_ = 0;
  std::string socket_;
};

// `replicas` fronts in this process (sharing the Redis at `state_url`, or one front with
// in-memory state when it is empty) and `workers` tpdiff-worker child processes connected to
// the first front, on 127.0.0.1.
class Service {
 public:
  static absl::StatusOr<std::unique_ptr<Service>> Start(
      const std::string& models_dir, const std::string& package, int workers,
      const std::string& log_dir, const std::string& state_url = "", int replicas = 1,
      const std::vector<std::string>& worker_flags = {}) {
    auto service = std::unique_ptr<Service>(new Service);
    for (int r = 0; r < replicas; ++r) {
      server::FrontServerOptions options;
      options.listen = "127.0.0.1:0";
      options.models_dir = models_dir;
      if (absl::Status s = server::ConfigureState(state_url, "", options); !s.ok()) return s;
      service->fronts_.push_back(std::make_unique<server::FrontServer>(options, service->clock_));
      if (absl::Status s = service->fronts_.back()->Start(); !s.ok()) return s;
      service->stubs_.push_back(api::VideoGeneration::NewStub(grpc::CreateChannel(
          absl::StrCat("127.0.0.1:", service->fronts_.back()->port()),
          grpc::InsecureChannelCredentials())));
    }
    const std::string target = absl::StrCat("127.0.0.1:", service->fronts_[0]->port());
    for (int i = 0; i < workers; ++i) {
      const std::string log =
          absl::StrCat(log_dir, "/worker-", workers, "-", replicas, "-", i, ".log");
      // Plaintext on loopback, as tpdiff-server --local-workers --insecure runs them.
      const std::string binary = absl::GetFlag(FLAGS_worker_binary);
      std::vector<std::string> args = {binary.empty() ? TPDIFF_WORKER_BINARY : binary,
                                       "--insecure",
                                       "--server=" + target,
                                       "--models_dir=" + models_dir,
                                       "--models=" + package,
                                       absl::StrCat("--worker_id=bench-", i),
                                       "--device=" + absl::GetFlag(FLAGS_device),
                                       "--insecure"};  // the in-process front serves plaintext
      if (absl::GetFlag(FLAGS_worker_threads) > 0) {
        args.push_back(absl::StrCat("--threads=", absl::GetFlag(FLAGS_worker_threads)));
      }
      args.insert(args.end(), worker_flags.begin(), worker_flags.end());
      absl::StatusOr<pid_t> pid = Spawn(args, log);
      if (!pid.ok()) return pid.status();
      service->children_.push_back({*pid, log});
    }
    // Model loading takes a while for big packages; a worker that dies says why in its log.
    const absl::Time until = absl::Now() + absl::Minutes(3);
    while (service->fronts_[0]->dispatcher().ServingWorkers() < static_cast<size_t>(workers)) {
      for (Child& child : service->children_) {
        int status = 0;
        if (waitpid(child.pid, &status, WNOHANG) == child.pid) {
          child.pid = 0;
          return absl::UnavailableError(
              absl::StrCat("worker exited before serving; its log:\n", Tail(child.log)));
        }
      }
      if (absl::Now() > until) return absl::DeadlineExceededError("workers did not connect");
      absl::SleepFor(absl::Milliseconds(20));
    }
    return service;
  }

  ~Service() {
    for (const Child& child : children_) {
      if (child.pid > 0) kill(child.pid, SIGTERM);
    }
    for (const Child& child : children_) {
      if (child.pid <= 0) continue;
      const absl::Time until = absl::Now() + absl::Seconds(10);
      while (waitpid(child.pid, nullptr, WNOHANG) != child.pid) {
        if (absl::Now() > until) {
          kill(child.pid, SIGKILL);
          waitpid(child.pid, nullptr, 0);
          break;
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    for (auto& front : fronts_) front->Shutdown(absl::ZeroDuration());
  }

  // One stub per front; clients spread their jobs over them.
  std::vector<api::VideoGeneration::Stub*> stubs() {
    std::vector<api::VideoGeneration::Stub*> out;
    for (auto& stub : stubs_) out.push_back(stub.get());
    return out;
  }

 private:
  struct Child {
    pid_t pid = 0;
    std::string log;
  };

  Service() = default;

  static std::string Tail(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    const std::string s = text.str();
    return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
  }

  server::RealClock clock_;
  std::vector<std::unique_ptr<server::FrontServer>> fronts_;
  std::vector<Child> children_;
  std::vector<std::unique_ptr<api::VideoGeneration::Stub>> stubs_;
};

// Runs `jobs` jobs from `clients` threads at once; returns the samples and the wall time.
struct Run {
  std::vector<JobSample> samples;
  double wall = 0;
};

// Job i goes to front i mod the number of fronts.
Run RunJobs(const std::vector<api::VideoGeneration::Stub*>& stubs,
            const api::GenerateRequest& request, int jobs, int clients) {
  Run run;
  run.samples.resize(jobs);
  std::atomic<int> next{0};
  const auto begin = SteadyClock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      for (int i = next++; i < jobs; i = next++) {
        api::GenerateRequest r = request;
        r.set_seed(static_cast<uint64_t>(i) + 1);
        run.samples[i] = RunJob(*stubs[i % stubs.size()], r);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  run.wall = SecondsSince(begin);
  return run;
}

// The first failure, for the error message; empty when every job completed.
std::string FirstError(const Run& run) {
  for (const JobSample& s : run.samples) {
    if (!s.error.empty()) return s.error;
  }
  return "";
}

// A temporary folder removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "tpdiff-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ChartPath(const std::string& fallback) {
  return absl::GetFlag(FLAGS_svg).empty() ? fallback : absl::GetFlag(FLAGS_svg);
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "tpdiff-bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int RunServiceBench() {
  std::vector<int> worker_counts;
  for (absl::string_view w : absl::StrSplit(absl::GetFlag(FLAGS_workers), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(w, &n) || n < 1) return Fail(absl::StrCat("--workers: bad count ", w));
    worker_counts.push_back(n);
  }
  const int jobs = absl::GetFlag(FLAGS_jobs) > 0 ? absl::GetFlag(FLAGS_jobs) : 60;
  TempDir tmp;
  if (tmp.path().empty()) return Fail("cannot create a temporary folder");
  const std::string models_dir = tmp.path() + "/models";
  PackageSpec spec;
  spec.name = "bench";
  spec.dir = models_dir + "/bench";
  spec.network = absl::GetFlag(FLAGS_network);
  spec.frames = absl::GetFlag(FLAGS_service_frames);
  spec.stage_steps = {1, 1, 1};
  if (absl::Status s = WritePackage(spec); !s.ok()) return Fail(s.ToString());

  api::GenerateRequest request;
  request.set_model(spec.name);
  request.set_prompt(absl::GetFlag(FLAGS_prompt));
  for (int i = 0; i < 3; ++i) request.add_stage_steps(1);
  request.mutable_preview()->set_enabled(true);

  struct Row {
    std::string state;  // memory, redis x1, redis x2 (front replicas)
    int workers, clients;
    Run run;
  };
  std::vector<Row> rows;
  for (int workers : worker_counts) {
    // Inline encoding: with encodes overlapping the sampling, total - sampling - encode would
    // no longer be what the service adds.
    auto service = Service::Start(models_dir, spec.name, workers, tmp.path(), "", 1,
                                  {"--encode-queue-depth=0"});
    if (!service.ok()) return Fail(service.status().ToString());
    // Warm-up: every worker runs a job or two before the clock starts.
    Run warm = RunJobs((*service)->stubs(), request, 2 * workers, workers);
    if (std::string e = FirstError(warm); !e.empty()) return Fail("warm-up job: " + e);
    // One job at a time (1 worker only): latency without queueing. Then 2 jobs in flight
    // per worker, so no worker waits for the next assignment and the queue is used.
    std::vector<int> client_counts = {2 * workers};
    if (workers == 1) client_counts.insert(client_counts.begin(), 1);
    for (int clients : client_counts) {
      Row row{"memory", workers, clients, RunJobs((*service)->stubs(), request, jobs, clients)};
      if (std::string e = FirstError(row.run); !e.empty()) return Fail("job: " + e);
      rows.push_back(std::move(row));
    }
  }
  // Shared state: the same with 1 worker, through 1 and 2 front replicas on one Redis (jobs
  // spread over the replicas; the worker is connected to the first, so with 2 replicas half
  // the jobs are queued on a replica that does not run them).
  std::string redis_url = absl::GetFlag(FLAGS_redis);
  std::unique_ptr<LocalRedis> local_redis;
  if (redis_url.empty()) {
    absl::StatusOr<std::unique_ptr<LocalRedis>> started = LocalRedis::Start(tmp.path());
    if (!started.ok()) return Fail(absl::StrCat("--redis: ", started.status().ToString()));
    local_redis = *std::move(started);
    redis_url = local_redis->url();
  }
  for (int replicas = 1; redis_url != "off" && replicas <= 2; ++replicas) {
    auto service = Service::Start(models_dir, spec.name, 1, tmp.path(), redis_url, replicas,
                                  {"--encode-queue-depth=0"});
    if (!service.ok()) return Fail(service.status().ToString());
    Run warm = RunJobs((*service)->stubs(), request, 2 * replicas, replicas);
    if (std::string e = FirstError(warm); !e.empty()) return Fail("warm-up job: " + e);
    for (int clients : {1, 2}) {
      Row row{absl::StrCat("redis x", replicas), 1, clients,
              RunJobs((*service)->stubs(), request, jobs, clients)};
      if (std::string e = FirstError(row.run); !e.empty()) return Fail("job: " + e);
      rows.push_back(std::move(row));
    }
  }

  std::printf(
      "service benchmark: %s network, %d frames %dx%d, 1 step per stage (3 stages), GIF "
      "previews + MP4, %d jobs per row, worker threads %d, %u cores\n",
      spec.network.c_str(), spec.frames, 32, 32, jobs, absl::GetFlag(FLAGS_worker_threads),
      std::thread::hardware_concurrency());
  std::printf(
      "  overhead = client-observed total - worker-reported (sampling + encoding); \"of it "
      "queue\" = p50 of the reported queue time (admission to start on a worker)\n");
  std::printf("  %-9s %-7s %-7s %8s %13s %13s %13s %13s %13s %13s\n", "state", "workers", "clients",
              "jobs/s", "overhead p50", "overhead p99", "of it queue", "sampling p50",
              "encode p50", "total p50");
  std::vector<Bar> bars;
  for (const Row& row : rows) {
    std::vector<double> overhead, queue, sampling, encode, total;
    for (const JobSample& s : row.run.samples) {
      overhead.push_back(s.overhead());
      queue.push_back(s.queue);
      sampling.push_back(s.sampling);
      encode.push_back(s.encode);
      total.push_back(s.total);
    }
    const double rate = row.run.samples.size() / row.run.wall;
    std::printf("  %-9s %-7d %-7d %8.1f %13s %13s %13s %13s %13s %13s\n", row.state.c_str(),
                row.workers, row.clients,
                rate, Ms(Percentile(overhead, 0.5)).c_str(), Ms(Percentile(overhead, 0.99)).c_str(),
                Ms(Percentile(queue, 0.5)).c_str(), Ms(Percentile(sampling, 0.5)).c_str(), Ms(Percentile(encode, 0.5)).c_str(),
                Ms(Percentile(total, 0.5)).c_str());
    bars.push_back({absl::StrCat(row.state, ", ", row.workers,
                                 row.workers == 1 ? " worker, " : " workers, ",
                                 row.clients, row.clients == 1 ? " client" : " clients"),
                    rate,
                    absl::StrFormat("overhead p50 %s, p99 %s", Ms(Percentile(overhead, 0.5)),
                                    Ms(Percentile(overhead, 0.99)))});
  }
  const std::string chart = ChartPath("bench-service.svg");
  std::ofstream(chart) << HorizontalBarChartSvg(
      absl::StrCat("Jobs per second through the front (", spec.network, " network, ",
                   spec.frames, " frames, 1 step per stage)"),
      "jobs/s", bars);
  std::printf("  chart written to %s\n", chart.c_str());
  return 0;
}

int RunPreviewBench() {
  const int jobs = absl::GetFlag(FLAGS_jobs) > 0 ? absl::GetFlag(FLAGS_jobs) : 10;
  struct Mode {
    std::string name;
    std::vector<std::string> worker_flags;
    std::vector<double> first, total, fraction, stage1, encode;
  };
  std::vector<Mode> modes;
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_encode_modes), ',')) {
    if (m == "inline") {
      modes.push_back({"inline", {"--encode-queue-depth=0"}});
    } else if (m == "overlapped") {
      modes.push_back({"overlapped", {}});
    } else {
      return Fail(absl::StrCat("--encode_modes: \"", m, "\" is not inline or overlapped"));
    }
  }
  TempDir tmp;
  if (tmp.path().empty()) return Fail("cannot create a temporary folder");
  std::string package_dir = absl::GetFlag(FLAGS_model);
  std::string description = package_dir;
  if (package_dir.empty()) {
    PackageSpec spec;
    spec.name = "random-cpu";
    spec.dir = tmp.path() + "/models/random-cpu";
    spec.network = "cpu";
    if (absl::Status s = WritePackage(spec); !s.ok()) return Fail(s.ToString());
    package_dir = spec.dir;
    description = "random cpu-preset package (untrained, the bundled model's size)";
  }
  while (package_dir.size() > 1 && package_dir.back() == '/') package_dir.pop_back();
  absl::StatusOr<spec::ModelManifest> manifest = spec::ReadManifest(package_dir);
  if (!manifest.ok()) return Fail(manifest.status().ToString());
  const fs::path path = fs::absolute(package_dir);

  api::GenerateRequest request;
  request.set_model(manifest->name);
  request.set_prompt(absl::GetFlag(FLAGS_prompt));
  request.mutable_preview()->set_enabled(true);
  std::vector<int> stage_steps = manifest->default_stage_steps;
  if (!absl::GetFlag(FLAGS_preview_steps).empty()) {
    stage_steps.clear();
    for (absl::string_view k : absl::StrSplit(absl::GetFlag(FLAGS_preview_steps), ',')) {
      int n = 0;
      if (!absl::SimpleAtoi(k, &n) || n < 1) return Fail(absl::StrCat("--preview_steps: bad ", k));
      stage_steps.push_back(n);
      request.add_stage_steps(n);
    }
  }
  // Modes take turns job by job, so that a shared machine's load falls on both alike.
  std::vector<std::unique_ptr<Service>> services;
  for (Mode& mode : modes) {
    auto service = Service::Start(path.parent_path().string(), path.filename().string(), 1,
                                  tmp.path(), "", 1, mode.worker_flags);
    if (!service.ok()) return Fail(service.status().ToString());
    Run warm = RunJobs((*service)->stubs(), request, 1, 1);
    if (std::string e = FirstError(warm); !e.empty()) return Fail("warm-up job: " + e);
    services.push_back(*std::move(service));
  }
  for (int i = 0; i < jobs; ++i) {
    for (size_t m = 0; m < modes.size(); ++m) {
      api::GenerateRequest r = request;
      r.set_seed(static_cast<uint64_t>(i) + 1);
      const JobSample s = RunJob(*services[m]->stubs()[0], r);
      if (!s.error.empty()) return Fail("job: " + s.error);
      if (s.first_preview < 0) return Fail("a job sent no preview");
      Mode& mode = modes[m];
      mode.first.push_back(s.first_preview);
      mode.total.push_back(s.total);
      mode.fraction.push_back(s.first_preview / s.total);
      mode.stage1.push_back(s.first_stage / s.total);
      mode.encode.push_back(s.encode);
    }
  }
  services.clear();

  std::string steps;
  for (int k : stage_steps) absl::StrAppend(&steps, steps.empty() ? "" : ",", k);
  std::printf("preview benchmark: %s\n", description.c_str());
  std::printf("  %s: %d frames %dx%d, stage steps %s, guidance %.1f; %d jobs one at a time per "
              "mode (modes alternate), worker threads %d, %u cores\n",
              manifest->name.c_str(), manifest->frames, manifest->height, manifest->width,
              steps.c_str(), manifest->default_guidance_scale, jobs,
              absl::GetFlag(FLAGS_worker_threads), std::thread::hardware_concurrency());
  // On a shared machine the minimum is the least disturbed run; p50 and p90 show the spread.
  std::printf("  %-11s %-22s %10s %10s %10s %10s\n", "encoding", "", "min", "p50", "p90", "max");
  auto line = [](const std::string& mode, const char* name, const std::vector<double>& v,
                 bool percent) {
    auto f = [&](double x) {
      return percent ? absl::StrFormat("%.1f%%", 100 * x) : absl::StrFormat("%.3f s", x);
    };
    std::printf("  %-11s %-22s %10s %10s %10s %10s\n", mode.c_str(), name,
                f(*std::min_element(v.begin(), v.end())).c_str(), f(Percentile(v, 0.5)).c_str(),
                f(Percentile(v, 0.9)).c_str(), f(Percentile(v, 1.0)).c_str());
  };
  std::vector<Bar> bars;
  for (const Mode& mode : modes) {
    line(mode.name, "first preview", mode.first, false);
    line(mode.name, "total", mode.total, false);
    line(mode.name, "first preview / total", mode.fraction, true);
    line(mode.name, "stage 1 / total", mode.stage1, true);
    line(mode.name, "encode (worker)", mode.encode, false);
    bars.push_back({mode.name + ": first preview", Percentile(mode.first, 0.5),
                    absl::StrFormat("%.1f%% of total", 100 * Percentile(mode.fraction, 0.5))});
    bars.push_back({mode.name + ": whole video", Percentile(mode.total, 0.5), ""});
  }
  const std::string chart = ChartPath("bench-preview.svg");
  std::ofstream(chart) << HorizontalBarChartSvg(
      absl::StrCat("Time to first preview vs. whole video (", manifest->name, ", p50 of ",
                   jobs, " jobs per encoding mode)"),
      "s", bars);
  std::printf("  chart written to %s\n", chart.c_str());
  return 0;
}

}  // namespace tpdiff::bench
