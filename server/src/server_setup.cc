#include "tpdiff/server/server_setup.h"


#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tpdiff/common/files.h"
#include "tpdiff/server/security.h"
#include "tpdiff/server/tenants.h"

namespace tpdiff::server {

absl::Status ConfigureSecurity(const SecurityFlags& flags, FrontServerOptions& options) {
  const bool tls_files =
      !flags.tls_cert.empty() || !flags.tls_key.empty() || !flags.tls_client_ca.empty();
  if (flags.insecure && tls_files) {
    return absl::InvalidArgumentError(
        "--insecure conflicts with --tls-cert/--tls-key/--tls-client-ca");
  }
  if (!flags.insecure) {
    if (flags.tls_cert.empty() || flags.tls_key.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert and --tls-key are required (or --insecure for plaintext on a trusted "
          "network)");
    }
    absl::StatusOr<ServerTls> tls =
        ReadServerTls(flags.tls_cert, flags.tls_key, flags.tls_client_ca);
    if (!tls.ok()) return tls.status();
    options.tls = *std::move(tls);
    options.worker_auth.require_client_cert = !flags.tls_client_ca.empty();
  }
  if (!flags.worker_secret_file.empty()) {
    absl::StatusOr<std::string> secret = ReadSecretFile(flags.worker_secret_file);
    if (!secret.ok()) return secret.status();
    options.worker_auth.secret = *std::move(secret);
  }
  if (options.tls.has_value() && !options.worker_auth.require_client_cert &&
      options.worker_auth.secret.empty()) {
    return absl::InvalidArgumentError(
        "with TLS, workers must authenticate: give --tls-client-ca and/or --worker-secret-file");
  }
  if (flags.auth == "none") {
    options.tenants.reset();
    return absl::OkStatus();
  }
  if (flags.auth != "api-key") {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth: \"", flags.auth, "\" is not api-key or none"));
  }
  if (flags.tenants_file.empty()) {
    return absl::InvalidArgumentError("--auth=api-key needs --tenants-file (or --auth=none)");
  }
  absl::StatusOr<std::vector<TenantConfig>> tenants = ReadTenantsFile(flags.tenants_file);
  if (!tenants.ok()) return tenants.status();
  options.tenants = *std::move(tenants);
  return absl::OkStatus();
}

absl::Status ConfigureState(const std::string& state, const std::string& password_file,
                            FrontServerOptions& options) {
  if (state.empty() || state == "memory") {
    if (!password_file.empty()) {
      return absl::InvalidArgumentError("--redis-password-file needs --state=redis://...");
    }
    options.redis.reset();
    return absl::OkStatus();
  }
  absl::StatusOr<RedisAddress> address = ParseRedisUrl(state);
  if (!address.ok()) return address.status();
  if (!password_file.empty()) {
    absl::StatusOr<std::string> password =
        common::ReadFileContents(password_file, "--redis-password-file");
    if (!password.ok()) return password.status();
    address->password = std::string(absl::StripTrailingAsciiWhitespace(*password));
  } else if (const char* env = std::getenv(kRedisPasswordEnv); env != nullptr) {
    address->password = env;
  }
  options.redis = *std::move(address);
  return absl::OkStatus();
}

std::string ServingMessage(const FrontServer& server) {
  std::string message = absl::StrCat("serving on port ", server.port());
  if (server.metrics_port() != 0)
    absl::StrAppend(&message, ", /metrics on port ", server.metrics_port());
  if (server.health_port() != 0)
    absl::StrAppend(&message, ", health on port ", server.health_port());
  return message;
}

absl::Status PrepareLocalWorkerAuth(const LocalWorkerFlags& flags, FrontServerOptions& options) {
  if (flags.count <= 0) return absl::OkStatus();
  if (options.worker_auth.require_client_cert) {
    return absl::InvalidArgumentError(
        "--local-workers cannot use --tls-client-ca; use --worker-secret-file");
  }
  if (options.worker_auth.secret.empty()) {
    // Without --worker-secret-file, a fresh secret, so no other local process can register
    // as a worker.
    options.worker_auth.secret = RandomSecret();
  }
  return absl::OkStatus();
}

absl::StatusOr<LocalWorkers::Options> LocalWorkerOptions(const LocalWorkerFlags& flags,
                                                         const SecurityFlags& security,
                                                         const FrontServerOptions& options,
                                                         int port) {
  LocalWorkers::Options out;
  out.binary = flags.binary.empty() ? DefaultWorkerBinary() : flags.binary;
  out.count = flags.count;
  // The secret reaches each child through its own environment: argv shows in ps, and the
  // server's own environment stays as it was.
  out.secret = options.worker_auth.secret;
  out.args = {absl::StrCat("--server=", security.insecure ? "127.0.0.1:" : "localhost:", port),
              absl::StrCat("--models_dir=", options.models_dir),
              security.insecure ? "--insecure" : absl::StrCat("--tls_ca=", security.tls_cert)};
  if (options.tls.has_value()) {
    absl::StatusOr<std::string> name = LocalServerName(options.tls->cert_chain_pem);
    if (!name.ok()) return name.status();
    out.args.push_back(absl::StrCat("--tls_server_name=", *name));
  }
  if (flags.threads > 0) out.args.push_back(absl::StrCat("--threads=", flags.threads));
  return out;
}

absl::StatusOr<std::unique_ptr<LocalWorkers>> StartLocalWorkers(const LocalWorkerFlags& flags,
                                                                const SecurityFlags& security,
                                                                const FrontServerOptions& options,
                                                                int port) {
  if (flags.count <= 0) return nullptr;
  absl::StatusOr<LocalWorkers::Options> worker_options =
      LocalWorkerOptions(flags, security, options, port);
  if (!worker_options.ok()) return worker_options.status();
  auto workers = std::make_unique<LocalWorkers>(*std::move(worker_options));
  if (absl::Status started = workers->Start(); !started.ok()) return started;
  return workers;
}

}  // namespace tpdiff::server
