#include "tpdiff/server/local_workers.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tpdiff/server/security.h"

extern char** environ;

namespace tpdiff::server {

LocalWorkers::LocalWorkers(Options options) : options_(std::move(options)) {}

LocalWorkers::~LocalWorkers() { Stop(); }

std::string DefaultWorkerBinary() {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return "tpdiff-worker";
  return (self.parent_path() / "tpdiff-worker").string();
}

pid_t LocalWorkers::Spawn() const {
  // Build argv and the environment before fork: only async-signal-safe calls are allowed in
  // the child.
  std::vector<std::string> args;
  args.push_back(options_.binary);
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const std::string secret_prefix = absl::StrCat(kWorkerSecretEnv, "=");
  std::string secret_entry = absl::StrCat(secret_prefix, options_.secret);
  std::vector<char*> envp;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (options_.secret.empty() || !absl::StartsWith(*entry, secret_prefix)) envp.push_back(*entry);
  }
  if (!options_.secret.empty()) envp.push_back(secret_entry.data());
  envp.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid < 0 ? 0 : pid;
  // Child: the server blocks SIGTERM/SIGINT to sigwait for them; the worker must not inherit
  // that. Die with the server even if it is killed.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(1);
  execve(argv[0], argv.data(), envp.data());
  _exit(127);
}

absl::Status LocalWorkers::Start() {
  if (access(options_.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("worker binary ", options_.binary, " is not executable: ", std::strerror(errno)));
  }
  {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < options_.count; ++i) {
      Child child;
      child.pid = Spawn();
      child.backoff = options_.restart_backoff;
      child.started_at = absl::Now();
      child.restart_at = child.started_at;
      children_.push_back(child);
    }
  }
  supervisor_ = std::thread([this] { Supervise(); });
  return absl::OkStatus();
}

void LocalWorkers::Supervise() {
  while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(200))) {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    for (Child& child : children_) {
      if (child.pid > 0) {
        int status = 0;
        if (waitpid(child.pid, &status, WNOHANG) != child.pid) continue;
        if (now - child.started_at >= options_.healthy_after) {
          child.backoff = options_.restart_backoff;
        }
        const std::string exit = WIFEXITED(status) ? absl::StrCat("status ", WEXITSTATUS(status))
                                                   : absl::StrCat("signal ", WTERMSIG(status));
        std::cerr << "tpdiff-server: local worker " << child.pid << " exited (" << exit << "); "
                  << (restarting_ ? absl::StrCat("restarting in ", absl::FormatDuration(child.backoff))
                                  : std::string("not restarted: the server is shutting down"))
                  << "\n";
        child.pid = 0;
        child.restart_at = now + child.backoff;
        child.backoff = std::min(child.backoff * 2, options_.max_restart_backoff);
      } else if (restarting_ && now >= child.restart_at) {
        child.pid = Spawn();
        child.started_at = now;
        ++restarts_;
        if (child.pid == 0) child.restart_at = now + child.backoff;
      }
    }
  }
}

void LocalWorkers::StopRestarting() {
  absl::MutexLock lock(&mu_);
  restarting_ = false;
}

void LocalWorkers::Stop() {
  StopRestarting();
  if (stop_.HasBeenNotified()) return;
  stop_.Notify();
  if (supervisor_.joinable()) supervisor_.join();
  absl::MutexLock lock(&mu_);
  for (const Child& child : children_) {
    if (child.pid > 0) kill(child.pid, SIGTERM);
  }
  const absl::Time deadline = absl::Now() + options_.stop_timeout;
  for (Child& child : children_) {
    while (child.pid > 0) {
      if (waitpid(child.pid, nullptr, WNOHANG) == child.pid) {
        child.pid = 0;
      } else if (absl::Now() >= deadline) {
        kill(child.pid, SIGKILL);
        waitpid(child.pid, nullptr, 0);
        child.pid = 0;
      } else {
        absl::SleepFor(absl::Milliseconds(20));  // polling a child's exit; not a test
      }
    }
  }
}

std::vector<pid_t> LocalWorkers::pids() const {
  absl::MutexLock lock(&mu_);
  std::vector<pid_t> pids;
  for (const Child& child : children_) pids.push_back(child.pid);
  return pids;
}

int LocalWorkers::restarts() const {
  absl::MutexLock lock(&mu_);
  return restarts_;
}

}  // namespace tpdiff::server
