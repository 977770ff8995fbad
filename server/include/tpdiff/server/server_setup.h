#ifndef TPDIFF_SERVER_SERVER_SETUP_H_
#define TPDIFF_SERVER_SERVER_SETUP_H_

// tpdiff-server's command-line policy as library calls, so it is unit-tested: which
// combinations of security flags are allowed (docs/security.md) and how local-mode workers
// are started and authenticated. server/main.cc only copies flags into these structs.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/server/local_workers.h"

namespace tpdiff::server {

// The security flags of tpdiff-server.
struct SecurityFlags {
  std::string tls_cert;            // PEM chain of this server
  std::string tls_key;             // its private key
  std::string tls_client_ca;       // CA of worker client certificates; empty = none
  std::string worker_secret_file;  // file with the shared worker secret; empty = none
  bool insecure = false;           // plaintext (local mode and tests only)
  std::string auth = "api-key";    // "api-key" (keys from tenants_file) or "none"
  std::string tenants_file;
};

// Fills options.tls, options.worker_auth and options.tenants: TLS unless `insecure`, worker
// authentication whenever TLS is on, API keys unless auth is "none". INVALID_ARGUMENT naming
// the flags for a conflicting or missing setting; the readers' errors for unreadable files.
absl::Status ConfigureSecurity(const SecurityFlags& flags, FrontServerOptions& options);

// The environment variable holding the Redis password when --redis-password-file is not set.
inline constexpr char kRedisPasswordEnv[] = "TPDIFF_REDIS_PASSWORD";

// Fills options.redis from --state ("memory", redis://HOST:PORT[/DB] or
// unix:///PATH[?db=N]) and the password: the file's first line, else kRedisPasswordEnv, never
// a flag value. INVALID_ARGUMENT naming --state for a bad value or a password file with
// --state=memory; the reader's error for an unreadable file.
absl::Status ConfigureState(const std::string& state, const std::string& password_file,
                            FrontServerOptions& options);

// "serving on port P, /metrics on port M, health on port H" for a started `server`, leaving
// out the listeners that are off; scripts and tests read the ports from this line.
std::string ServingMessage(const FrontServer& server);

// Local mode (--local-workers): tpdiff-worker children on loopback.
struct LocalWorkerFlags {
  int count = 0;       // 0 = none
  std::string binary;  // empty = DefaultWorkerBinary()
  int threads = 0;     // the workers' --threads when > 0
};

// Before the front starts: local workers authenticate with the worker secret (they have no
// client certificate), so INVALID_ARGUMENT with --tls-client-ca; without a secret file a
// fresh secret goes into options.worker_auth (LocalWorkerOptions hands it to the children).
// No-op for count 0.
absl::Status PrepareLocalWorkerAuth(const LocalWorkerFlags& flags, FrontServerOptions& options);

// The children's command line and secret for a front serving on `port` with `options`. With
// TLS they trust the server's own certificate (self-signed, or a chain ending at its CA) and
// check a name it holds (LocalServerName); INVALID_ARGUMENT when it names no host.
absl::StatusOr<LocalWorkers::Options> LocalWorkerOptions(const LocalWorkerFlags& flags,
                                                         const SecurityFlags& security,
                                                         const FrontServerOptions& options,
                                                         int port);

// LocalWorkerOptions, then starts the children; null for count 0. NOT_FOUND when the worker
// binary is missing.
absl::StatusOr<std::unique_ptr<LocalWorkers>> StartLocalWorkers(const LocalWorkerFlags& flags,
                                                                const SecurityFlags& security,
                                                                const FrontServerOptions& options,
                                                                int port);

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_SERVER_SETUP_H_
