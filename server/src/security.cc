#include "tpdiff/server/security.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tpdiff/common/files.h"
#include "tpdiff/server/tenants.h"

namespace tpdiff::server {
absl::StatusOr<ServerTls> ReadServerTls(const std::string& cert_path, const std::string& key_path,
                                        const std::string& client_ca_path) {
  ServerTls tls;
  absl::StatusOr<std::string> cert = common::ReadFileContents(cert_path, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = common::ReadFileContents(key_path, "--tls-key");
  if (!key.ok()) return key.status();
  tls.cert_chain_pem = *std::move(cert);
  tls.private_key_pem = *std::move(key);
  if (!client_ca_path.empty()) {
    absl::StatusOr<std::string> ca = common::ReadFileContents(client_ca_path, "--tls-client-ca");
    if (!ca.ok()) return ca.status();
    tls.client_ca_pem = *std::move(ca);
  }
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const std::optional<ServerTls>& tls) {
  if (!tls.has_value()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      tls->client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                 : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls->client_ca_pem;
  options.pem_key_cert_pairs.push_back({tls->private_key_pem, tls->cert_chain_pem});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::string> LocalServerName(absl::string_view cert_chain_pem) {
  BIO* bio = BIO_new_mem_buf(cert_chain_pem.data(), static_cast<int>(cert_chain_pem.size()));
  X509* cert = bio == nullptr ? nullptr : PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return absl::InvalidArgumentError("--tls-cert: no PEM certificate");
  std::vector<std::string> dns_names;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_DNS) continue;
    const ASN1_IA5STRING* dns = name->d.dNSName;
    dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                           static_cast<size_t>(ASN1_STRING_length(dns)));
  }
  GENERAL_NAMES_free(names);
  char common_name[256] = {0};
  const int cn_length = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName,
                                                  common_name, sizeof(common_name));
  X509_free(cert);
  for (const std::string& name : dns_names) {
    if (name == "localhost") return name;
  }
  for (const std::string& name : dns_names) {
    if (!absl::StrContains(name, '*')) return name;
  }
  if (cn_length > 0) return std::string(common_name, static_cast<size_t>(cn_length));
  return absl::InvalidArgumentError(
      "--tls-cert: the certificate names no host (no DNS subjectAltName, no common name)");
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFileContents(path, "--worker-secret-file");
  if (!text.ok()) return text.status();
  std::string secret(absl::StripTrailingAsciiWhitespace(*text));
  if (secret.size() < kMinWorkerSecretBytes) {
    return absl::InvalidArgumentError(absl::StrCat("--worker-secret-file ", path, ": the secret has ",
                                                   secret.size(), " bytes, fewer than the minimum of ",
                                                   kMinWorkerSecretBytes));
  }
  return secret;
}

std::string RandomSecret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();  // no entropy: refuse to go on
  std::string hex;
  for (unsigned char b : bytes) absl::StrAppendFormat(&hex, "%02x", b);
  return hex;
}

WorkerAuthenticator::WorkerAuthenticator(const WorkerAuthOptions& options)
    : require_client_cert_(options.require_client_cert),
      secret_sha256_(options.secret.empty() ? "" : Sha256Hex(options.secret)) {}

absl::Status WorkerAuthenticator::Check(bool peer_cert_verified,
                                        absl::string_view presented_secret) const {
  if (require_client_cert_ && !peer_cert_verified) {
    return absl::UnauthenticatedError(
        "WorkerGateway requires a client certificate signed by the server's --tls-client-ca");
  }
  if (!secret_sha256_.empty()) {
    // Hashing first makes the comparison independent of the presented length too.
    if (presented_secret.empty() ||
        !ConstantTimeEquals(Sha256Hex(presented_secret), secret_sha256_)) {
      return absl::UnauthenticatedError(absl::StrCat(
          "WorkerGateway requires the worker secret in metadata \"", kWorkerSecretMetadata, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status WorkerAuthenticator::Check(const grpc::CallbackServerContext& context) const {
  // With GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY the handshake fails for a certificate
  // the CA did not sign, so a peer certificate here means a verified client certificate.
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  const bool verified =
      auth != nullptr && !auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME).empty();
  absl::string_view secret;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find(kWorkerSecretMetadata); it != metadata.end()) {
    secret = absl::string_view(it->second.data(), it->second.size());
  }
  return Check(verified, secret);
}

}  // namespace tpdiff::server
