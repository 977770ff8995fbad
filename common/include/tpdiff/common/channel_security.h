#ifndef TPDIFF_COMMON_CHANNEL_SECURITY_H_
#define TPDIFF_COMMON_CHANNEL_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpdiff::common {

// How a client (the `tpdiff` CLI, a worker) dials the front; see docs/security.md.
struct ChannelSecurity {
  bool insecure = false;  // plaintext; only when asked for explicitly (--insecure)
  std::string ca_file;    // PEM roots that sign the server's certificate; empty = system roots
  std::string cert_file;  // client certificate (worker mTLS); empty = none
  std::string key_file;   // its private key
  // Sent on every call as "authorization: Bearer <key>"; gRPC sends call credentials only
  // over TLS, so a key with `insecure` is refused rather than leaked.
  std::string api_key;
  // TLS: the name to verify in the server's certificate instead of the dialled host, e.g. the
  // Service name when dialling localhost through `kubectl port-forward`. Empty = the host.
  std::string server_name;
};

// TLS (or plaintext) channel credentials with the API key attached. INVALID_ARGUMENT for
// conflicting settings, NOT_FOUND naming an unreadable file.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ChannelSecurity& security);

// A channel to `target` with MakeChannelCredentials(security) and security.server_name;
// `args` carry the caller's other channel settings. Errors as MakeChannelCredentials.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& target, const ChannelSecurity& security,
    grpc::ChannelArguments args = grpc::ChannelArguments());


}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_CHANNEL_SECURITY_H_
