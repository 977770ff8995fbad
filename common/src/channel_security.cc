#include "tpdiff/common/channel_security.h"

#include "absl/strings/str_cat.h"
#include "tpdiff/common/files.h"

namespace tpdiff::common {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ChannelSecurity& security) {
  const bool tls_files =
      !security.ca_file.empty() || !security.cert_file.empty() || !security.key_file.empty();
  if (security.insecure) {
    if (tls_files) {
      return absl::InvalidArgumentError("--insecure conflicts with --tls-ca/--tls-cert/--tls-key");
    }
    if (!security.api_key.empty()) {
      return absl::InvalidArgumentError(
          "an API key is only sent over TLS: drop --insecure (and give --tls-ca) or the key");
    }
    if (!security.server_name.empty()) {
      return absl::InvalidArgumentError(
          "--tls-server-name names the certificate to verify over TLS: drop --insecure or it");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (security.cert_file.empty() != security.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  grpc::SslCredentialsOptions options;
  if (!security.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadFileContents(security.ca_file, "--tls-ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
  }
  if (!security.cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadFileContents(security.cert_file, "--tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFileContents(security.key_file, "--tls-key");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *std::move(cert);
    options.pem_private_key = *std::move(key);
  }
  std::shared_ptr<grpc::ChannelCredentials> channel = grpc::SslCredentials(options);
  if (security.api_key.empty()) return channel;
  return grpc::CompositeChannelCredentials(channel, grpc::AccessTokenCredentials(security.api_key));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const ChannelSecurity& security,
                                                           grpc::ChannelArguments args) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(security);
  if (!credentials.ok()) return credentials.status();
  if (!security.server_name.empty()) args.SetSslTargetNameOverride(security.server_name);
  return grpc::CreateCustomChannel(target, *credentials, args);
}

}  // namespace tpdiff::common
