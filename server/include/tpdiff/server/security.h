#ifndef TPDIFF_SERVER_SECURITY_H_
#define TPDIFF_SERVER_SECURITY_H_

#include <memory>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/common/worker_secret.h"

namespace tpdiff::server {

using ::tpdiff::common::kWorkerSecretEnv;
using ::tpdiff::common::kWorkerSecretMetadata;
// Shortest accepted worker secret, so a typo'd or truncated file is caught at start.
inline constexpr size_t kMinWorkerSecretBytes = 16;

// PEM contents for the front's TLS listener.
struct ServerTls {
  std::string cert_chain_pem;
  std::string private_key_pem;
  // CA that signs worker client certificates; empty = no client certificates requested.
  std::string client_ca_pem;
};

// Reads the PEM files (client_ca_path may be empty). NOT_FOUND names the unreadable file.
absl::StatusOr<ServerTls> ReadServerTls(const std::string& cert_path, const std::string& key_path,
                                        const std::string& client_ca_path);
// TLS credentials when `tls` is set, plaintext otherwise. With a client CA, client
// certificates are requested and verified when presented, but not required: API clients
// have none, and WorkerGateway.Connect checks for one itself (WorkerAuthenticator).
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const std::optional<ServerTls>& tls);

// The name a local worker (which dials localhost) checks in the front's certificate, the
// leaf of `cert_chain_pem`: "localhost" when the certificate names it, else its first DNS
// name without a wildcard, else its subject's common name. INVALID_ARGUMENT when the PEM
// holds no certificate or the certificate names no host.
absl::StatusOr<std::string> LocalServerName(absl::string_view cert_chain_pem);

// A whole file as a secret: trailing whitespace (the newline of `echo x > file`) dropped;
// INVALID_ARGUMENT when shorter than kMinWorkerSecretBytes. The message never shows it.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// 32 random bytes from OpenSSL's CSPRNG, hex-encoded.
std::string RandomSecret();

struct WorkerAuthOptions {
  bool require_client_cert = false;  // a client certificate verified against the client CA
  std::string secret;                // empty = no secret required
};

// Decides whether a WorkerGateway.Connect caller is a worker. Every configured mechanism must
// pass; with none configured everyone passes (plaintext local mode).
//
// Thread safety: immutable after construction. Only the secret's SHA-256 is kept, and it is
// compared in constant time.
class WorkerAuthenticator {
 public:
  explicit WorkerAuthenticator(const WorkerAuthOptions& options);

  // `peer_cert_verified`: TLS verified a client certificate; `presented_secret`: the
  // metadata value, empty when absent. UNAUTHENTICATED saying what is missing.
  absl::Status Check(bool peer_cert_verified, absl::string_view presented_secret) const;
  // The same, reading the call's AuthContext and metadata.
  absl::Status Check(const grpc::CallbackServerContext& context) const;

 private:
  bool require_client_cert_;
  std::string secret_sha256_;  // empty = no secret
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_SECURITY_H_
