#ifndef TPDIFF_TESTS_LOAD_FRONT_PROCESS_H_
#define TPDIFF_TESTS_LOAD_FRONT_PROCESS_H_

// The real tpdiff-server binary as a child process with --local-workers, on loopback, for the
// load and fault tests: its RSS, its worker children and its /metrics are observable from the
// test, and it can be signalled (SIGTERM) like a pod.
//
// Ownership: owns the process; the destructor stops it (SIGTERM, then SIGKILL of the front
// and of any worker it left behind). Thread safety: one controlling thread; RssKb(),
// MetricValue() and WorkerPids() may be called from any thread.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tpdiff::load {

struct FrontOptions {
  std::string server_binary;
  std::string worker_binary;
  std::string models_dir;
  int local_workers = 2;
  std::vector<std::string> extra_args;  // more tpdiff-server flags
};

class FrontProcess {
 public:
  // Spawns the front and waits (bounded) until it serves and `local_workers` workers are
  // connected (tpdiff_workers{state="serving"} on /metrics).
  static absl::StatusOr<std::unique_ptr<FrontProcess>> Start(const FrontOptions& options,
                                                             absl::Duration timeout);
  ~FrontProcess();

  std::string target() const;  // 127.0.0.1:<port>
  pid_t pid() const { return pid_; }
  // Resident set size of the front alone (not its workers), from /proc; 0 once it exited.
  long RssKb() const;
  // Processes whose parent is the front: its local workers.
  std::vector<pid_t> WorkerPids() const;
  // The /metrics sample whose line starts with `series` (name and labels), or -1.
  double MetricValue(const std::string& series) const;
  // Waits until MetricValue(series) >= value; false on timeout.
  bool WaitForMetric(const std::string& series, double value, absl::Duration timeout) const;
  // Waits until 0 <= MetricValue(series) <= value (a gauge draining); false on timeout.
  bool WaitForMetricAtMost(const std::string& series, double value, absl::Duration timeout) const;

  void Signal(int signal) const;
  // Waits for the front to exit; its exit status (WEXITSTATUS, or 128 + signal), or -1 on
  // timeout.
  int Wait(absl::Duration timeout);
  // The front's stderr so far.
  std::string Log() const;

 private:
  FrontProcess() = default;
  pid_t pid_ = 0;
  int port_ = 0;
  int metrics_port_ = 0;
  std::string log_path_;
  bool exited_ = false;
};

// A fresh temporary models dir holding the tiny random package "tiny" (see
// tests/unit/worker/tiny_package.h); removed by the caller.
absl::StatusOr<std::string> WriteTinyModelsDir();

}  // namespace tpdiff::load

#endif  // TPDIFF_TESTS_LOAD_FRONT_PROCESS_H_
