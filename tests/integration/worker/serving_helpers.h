#ifndef TPDIFF_TESTS_INTEGRATION_WORKER_SERVING_HELPERS_H_
#define TPDIFF_TESTS_INTEGRATION_WORKER_SERVING_HELPERS_H_

// What the serving tests share: a tpdiff-worker child process (the binary at
// TPDIFF_WORKER_BINARY) dialling a test's front, and reading a Generate stream to its end.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

extern char** environ;

namespace tpdiff::worker::testing {

// Killed with SIGKILL when destroyed.
class WorkerProcess {
 public:
  // `flags`: the worker's transport flags (plaintext to the test's front by default) and any
  // other flag, e.g. --models. `stderr_path`: a file for the worker's log; empty = the test's.
  WorkerProcess(const std::string& target, const std::string& models_dir, const std::string& id,
                const std::vector<std::string>& flags = {"--insecure"},
                const std::string& stderr_path = "") {
    std::vector<std::string> args = {TPDIFF_WORKER_BINARY, "--server=" + target,
                                     "--models-dir=" + models_dir, "--worker-id=" + id,
                                     "--threads=1", "--device=cpu"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!stderr_path.empty()) {
      posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
    EXPECT_EQ(posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
  }

  // Waits (bounded, polling) for the process to exit; its exit code, or -1 when it is still
  // running after `timeout` or was killed by a signal.
  int WaitForExit(absl::Duration timeout) {
    const absl::Time until = absl::Now() + timeout;
    while (pid_ > 0 && absl::Now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      absl::SleepFor(absl::Milliseconds(20));  // polls a real process
    }
    return -1;
  }
  ~WorkerProcess() { Kill(); }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }

 private:
  pid_t pid_ = 0;
};

// Reads a Generate stream to its end; the stream must finish OK.
inline std::vector<tpdiff::v1::JobEvent> GenerateAll(tpdiff::v1::VideoGeneration::Stub& stub,
                                                     const tpdiff::v1::GenerateRequest& request) {
  grpc::ClientContext context;
  auto reader = stub.Generate(&context, request);
  std::vector<tpdiff::v1::JobEvent> events;
  tpdiff::v1::JobEvent e;
  while (reader->Read(&e)) events.push_back(e);
  EXPECT_TRUE(reader->Finish().ok());
  return events;
}

// Waits (bounded) until the front has `n` serving workers.
inline bool WaitForWorkers(server::FrontServer& front, size_t n) {
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (front.dispatcher().ServingWorkers() < n) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(10));  // polls real processes starting up
  }
  return true;
}

}  // namespace tpdiff::worker::testing

#endif  // TPDIFF_TESTS_INTEGRATION_WORKER_SERVING_HELPERS_H_
