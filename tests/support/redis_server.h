#ifndef TPDIFF_TESTS_SUPPORT_REDIS_SERVER_H_
#define TPDIFF_TESTS_SUPPORT_REDIS_SERVER_H_

// A real redis-server for tests, on a unix socket in a fresh temporary folder (no port to
// race for), without persistence unless asked for AOF. Tests that use it are never skipped:
// Start fails naming the missing binary (scripts/install-deps.sh installs redis-server).
//
// Ownership: owns the process and the folder; the destructor kills the server and removes
// the folder. Thread safety: one controlling thread.

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tpdiff::testing {

struct RedisServerOptions {
  bool append_only = false;  // AOF with appendfsync always: every acknowledged write survives
  std::string password;      // requirepass; empty = none
};

class RedisServer {
 public:
  // FAILED_PRECONDITION when redis-server is not installed; DEADLINE_EXCEEDED when it does
  // not answer PING within 10 s.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});
  ~RedisServer();

  const std::string& socket_path() const { return socket_; }
  std::string url() const { return "unix://" + socket_; }  // for --state
  pid_t pid() const { return pid_; }

  // kill -9, and wait for it.
  void Kill();
  // Starts it again on the same folder and socket (reloading the AOF) and waits for PING.
  absl::Status Restart();

 private:
  RedisServer() = default;
  absl::Status Spawn();

  RedisServerOptions options_;
  std::string dir_;
  std::string socket_;
  pid_t pid_ = 0;
};

}  // namespace tpdiff::testing

#endif  // TPDIFF_TESTS_SUPPORT_REDIS_SERVER_H_
