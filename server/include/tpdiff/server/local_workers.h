#ifndef TPDIFF_SERVER_LOCAL_WORKERS_H_
#define TPDIFF_SERVER_LOCAL_WORKERS_H_

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace tpdiff::server {

// Runs `count` copies of a worker binary as child processes (fork + exec, no shell),
// restarts any that exits (with backoff, logging its exit status to stderr) and stops them
// all on Stop(). A child that exits once shutdown has begun (StopRestarting) is not
// restarted: draining workers exit on purpose.
//
// Ownership: owns the children. Thread safety: Start and Stop from one controlling thread;
// pids() from any thread.
class LocalWorkers {
 public:
  struct Options {
    std::string binary;             // path of tpdiff-worker
    std::vector<std::string> args;  // argv[1..]
    // The worker secret, given to each child as environment variable TPDIFF_WORKER_SECRET
    // (kWorkerSecretEnv, what tpdiff-worker reads without --worker-secret-file): the
    // environment of a process is readable only by its user, while argv shows in ps.
    // Empty = the children inherit this process's environment unchanged.
    std::string secret;
    int count = 0;
    absl::Duration restart_backoff = absl::Seconds(1);      // first restart delay, doubled
    absl::Duration max_restart_backoff = absl::Seconds(30);
    // A child that ran at least this long before exiting counts as having been healthy: its
    // next restart waits restart_backoff again instead of the doubled delay, so one crash a
    // day does not leave a worker 30 s away from every later restart.
    absl::Duration healthy_after = absl::Minutes(1);
    absl::Duration stop_timeout = absl::Seconds(10);        // SIGTERM, then SIGKILL
  };

  explicit LocalWorkers(Options options);
  ~LocalWorkers();  // Stop()

  // Spawns the children and the supervising thread. NOT_FOUND when the binary is missing.
  absl::Status Start();
  // Shutdown has begun: children that exit from now on are reaped, not restarted (the front
  // drains its workers and they exit by themselves). Idempotent; Stop() implies it.
  void StopRestarting();
  // SIGTERM to each child, SIGKILL after stop_timeout; no more restarts.
  void Stop();

  std::vector<pid_t> pids() const;  // 0 for a child waiting to be restarted
  int restarts() const;

 private:
  struct Child {
    pid_t pid = 0;
    absl::Time started_at;
    absl::Time restart_at;
    absl::Duration backoff;
  };

  pid_t Spawn() const;
  void Supervise();

  const Options options_;
  mutable absl::Mutex mu_;
  std::vector<Child> children_ ABSL_GUARDED_BY(mu_);
  int restarts_ ABSL_GUARDED_BY(mu_) = 0;
  bool restarting_ ABSL_GUARDED_BY(mu_) = true;
  absl::Notification stop_;
  std::thread supervisor_;
};

// Default worker binary: tpdiff-worker in the folder of the running executable.
std::string DefaultWorkerBinary();

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_LOCAL_WORKERS_H_
