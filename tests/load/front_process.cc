#include "front_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "raw_http.h"
#include "tiny_package.h"

extern char** environ;

namespace tpdiff::load {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "... serving on port 123, /metrics on port 456": the number after `marker`, or 0.
int PortAfter(const std::string& log, const std::string& marker) {
  const size_t at = log.find(marker);
  if (at == std::string::npos) return 0;
  int port = 0;
  for (size_t i = at + marker.size(); i < log.size() && isdigit(log[i]); ++i) {
    port = port * 10 + (log[i] - '0');
  }
  return port;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FrontProcess>> FrontProcess::Start(const FrontOptions& options,
                                                                  absl::Duration timeout) {
  std::unique_ptr<FrontProcess> front(new FrontProcess());
  std::string tmpl = (fs::temp_directory_path() / "tpdiff-front-log-XXXXXX").string();
  const int log_fd = mkstemp(tmpl.data());
  if (log_fd < 0) return absl::InternalError("mkstemp failed");
  close(log_fd);
  front->log_path_ = tmpl;

  std::vector<std::string> args = {options.server_binary,
                                   "--listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0",
                                   "--models_dir=" + options.models_dir,
                                   absl::StrCat("--local_workers=", options.local_workers),
                                   "--worker_binary=" + options.worker_binary,
                                   "--worker_threads=1",
                                   "--insecure",  // plaintext and no API keys: explicit since the hardening
                                   "--auth=none"};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, front->log_path_.c_str(), O_WRONLY | O_APPEND, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  const int spawned = posix_spawn(&front->pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    front->pid_ = 0;
    return absl::InternalError(absl::StrCat("posix_spawn ", argv[0], " failed: ", spawned));
  }

  const absl::Time until = absl::Now() + timeout;
  while (front->metrics_port_ == 0) {
    const std::string log = front->Log();
    front->port_ = PortAfter(log, "serving on port ");
    front->metrics_port_ = PortAfter(log, "/metrics on port ");
    int status = 0;
    if (waitpid(front->pid_, &status, WNOHANG) == front->pid_) {
      front->exited_ = true;
      return absl::InternalError(absl::StrCat("tpdiff-server exited early: ", log));
    }
    if (absl::Now() > until) return absl::DeadlineExceededError("tpdiff-server did not start");
    absl::SleepFor(absl::Milliseconds(20));  // polling a real process starting up
  }
  if (!front->WaitForMetric("tpdiff_workers{state=\"serving\"}", options.local_workers,
                            until - absl::Now())) {
    return absl::DeadlineExceededError(
        absl::StrCat(options.local_workers, " workers did not connect; log: ", front->Log()));
  }
  return front;
}

FrontProcess::~FrontProcess() {
  if (pid_ <= 0 || exited_) return;
  const std::vector<pid_t> workers = WorkerPids();
  for (pid_t worker : workers) kill(worker, SIGCONT);  // a stopped worker cannot exit
  Signal(SIGTERM);
  if (Wait(absl::Seconds(20)) < 0) {
    kill(pid_, SIGKILL);
    Wait(absl::Seconds(5));
  }
  for (pid_t worker : workers) kill(worker, SIGKILL);  // no-op when the front stopped them
  std::remove(log_path_.c_str());
}

std::string FrontProcess::target() const { return absl::StrCat("127.0.0.1:", port_); }

long FrontProcess::RssKb() const {
  std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      long kb = 0;
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb;
    }
  }
  return 0;
}

std::vector<pid_t> FrontProcess::WorkerPids() const {
  std::vector<pid_t> out;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/proc", error)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    const std::string stat = ReadAll(entry.path().string() + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(stat).substr(paren + 2), ' ');
    int ppid = 0;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) && ppid == pid_) out.push_back(pid);
  }
  return out;
}

double FrontProcess::MetricValue(const std::string& series) const {
  const std::string body = tpdiff::testing::ScrapeMetrics(metrics_port_);
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (!absl::ConsumePrefix(&line, series) || !absl::ConsumePrefix(&line, " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return -1;
}

bool FrontProcess::WaitForMetric(const std::string& series, double value,
                                 absl::Duration timeout) const {
  const absl::Time until = absl::Now() + timeout;
  while (MetricValue(series) < value) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(50));  // polling a real process
  }
  return true;
}

bool FrontProcess::WaitForMetricAtMost(const std::string& series, double value,
                                       absl::Duration timeout) const {
  const absl::Time until = absl::Now() + timeout;
  for (double now = MetricValue(series); now < 0 || now > value; now = MetricValue(series)) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(50));  // polling a real process
  }
  return true;
}

void FrontProcess::Signal(int signal) const {
  if (pid_ > 0 && !exited_) kill(pid_, signal);
}

int FrontProcess::Wait(absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (!exited_) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (absl::Now() > until) return -1;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return -1;
}

std::string FrontProcess::Log() const { return ReadAll(log_path_); }

absl::StatusOr<std::string> WriteTinyModelsDir() {
  return worker::testing::WriteTinyPackage("tiny");
}

}  // namespace tpdiff::load
