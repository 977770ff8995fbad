#include "tpdiff/server/server_setup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tpdiff/server/security.h"

namespace tpdiff::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ConfigureSecurity only reads the PEM files; gRPC parses them when the server starts, so
// any text stands in for a certificate here.
class ConfigureSecurityTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  void SetUp() override {
    // A folder of its own: ctest runs each test as its own process, in parallel.
    std::string tmpl = ::testing::TempDir() + "/tpdiff-server-setup-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    flags_.tls_cert = Write("cert.pem", "CERT");
    flags_.tls_key = Write("key.pem", "KEY");
    flags_.worker_secret_file = Write("secret", "0123456789abcdef-secret\n");
    flags_.tenants_file =
        Write("tenants.json", R"({"tenants": [{"name": "a", "api_key_sha256": [")" +
                                  std::string(64, 'a') + R"("]}]})");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  absl::Status Configure() { return ConfigureSecurity(flags_, options_); }

  std::string dir_;
  SecurityFlags flags_;
  FrontServerOptions options_;
};

TEST_F(ConfigureSecurityTest, TlsWithASecretAndApiKeys) {
  ASSERT_TRUE(Configure().ok());
  ASSERT_TRUE(options_.tls.has_value());
  EXPECT_EQ(options_.tls->cert_chain_pem, "CERT");
  EXPECT_EQ(options_.tls->private_key_pem, "KEY");
  EXPECT_FALSE(options_.worker_auth.require_client_cert);
  EXPECT_EQ(options_.worker_auth.secret, "0123456789abcdef-secret");
  ASSERT_TRUE(options_.tenants.has_value());
  ASSERT_EQ(options_.tenants->size(), 1u);
  EXPECT_EQ((*options_.tenants)[0].name, "a");
}

TEST_F(ConfigureSecurityTest, AClientCaAloneAuthenticatesWorkers) {
  flags_.worker_secret_file.clear();
  flags_.tls_client_ca = Write("ca.pem", "CA");
  ASSERT_TRUE(Configure().ok());
  EXPECT_TRUE(options_.worker_auth.require_client_cert);
  EXPECT_EQ(options_.tls->client_ca_pem, "CA");
}

TEST_F(ConfigureSecurityTest, TlsWithoutWorkerAuthenticationIsRefused) {
  flags_.worker_secret_file.clear();
  EXPECT_THAT(Configure().message(), HasSubstr("workers must authenticate"));
}

TEST_F(ConfigureSecurityTest, TlsNeedsCertAndKeyUnlessInsecure) {
  flags_.tls_key.clear();
  absl::Status status = Configure();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--tls-cert and --tls-key are required"));
}

TEST_F(ConfigureSecurityTest, InsecureConflictsWithTlsFiles) {
  flags_.insecure = true;
  EXPECT_THAT(Configure().message(), HasSubstr("--insecure conflicts with"));
  flags_.tls_cert.clear();
  flags_.tls_key.clear();
  flags_.auth = "none";
  ASSERT_TRUE(Configure().ok());
  EXPECT_FALSE(options_.tls.has_value());
  EXPECT_FALSE(options_.tenants.has_value());
}

TEST_F(ConfigureSecurityTest, AuthMustBeApiKeyWithATenantsFileOrNone) {
  flags_.auth = "basic";
  EXPECT_THAT(Configure().message(), HasSubstr("--auth: \"basic\" is not api-key or none"));
  flags_.auth = "api-key";
  flags_.tenants_file.clear();
  EXPECT_THAT(Configure().message(), HasSubstr("--auth=api-key needs --tenants-file"));
  flags_.tenants_file = "/nonexistent/tenants.json";
  EXPECT_EQ(Configure().code(), absl::StatusCode::kNotFound);
}

TEST(LocalWorkersSetupTest, ClientCertificatesCannotAuthenticateLocalWorkers) {
  FrontServerOptions options;
  options.worker_auth.require_client_cert = true;
  EXPECT_TRUE(PrepareLocalWorkerAuth({0, "", 0}, options).ok());  // no local workers
  EXPECT_THAT(PrepareLocalWorkerAuth({2, "", 0}, options).message(),
              HasSubstr("--local-workers cannot use --tls-client-ca"));
}

// The children get the secret in their own environment (LocalWorkers::Options::secret); the
// server's environment is left as it was.
TEST(LocalWorkersSetupTest, TheSecretIsHandedToTheChildrenNotToThisProcess) {
  unsetenv(kWorkerSecretEnv);
  FrontServerOptions options;
  options.models_dir = "models";
  SecurityFlags security;
  security.insecure = true;
  ASSERT_TRUE(PrepareLocalWorkerAuth({1, "", 0}, options).ok());
  EXPECT_EQ(options.worker_auth.secret.size(), 64u);  // a fresh RandomSecret
  EXPECT_EQ(getenv(kWorkerSecretEnv), nullptr);
  absl::StatusOr<LocalWorkers::Options> fresh = LocalWorkerOptions({1, "", 0}, security, options, 1);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->secret, options.worker_auth.secret);
  // A secret from --worker-secret-file is handed on as it is.
  options.worker_auth.secret = "0123456789abcdef-from-file";
  ASSERT_TRUE(PrepareLocalWorkerAuth({1, "", 0}, options).ok());
  absl::StatusOr<LocalWorkers::Options> from_file =
      LocalWorkerOptions({1, "", 0}, security, options, 1);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(from_file->secret, "0123456789abcdef-from-file");
  EXPECT_EQ(getenv(kWorkerSecretEnv), nullptr);
}

TEST(LocalWorkersSetupTest, ChildrenDialThisFrontWithItsSecurity) {
  FrontServerOptions options;
  options.models_dir = "models";
  SecurityFlags security;
  security.insecure = true;
  absl::StatusOr<LocalWorkers::Options> plain =
      LocalWorkerOptions({2, "/bin/w", 3}, security, options, 5000);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->binary, "/bin/w");
  EXPECT_EQ(plain->count, 2);
  EXPECT_THAT(plain->args, ElementsAre("--server=127.0.0.1:5000", "--models_dir=models",
                                      "--insecure", "--threads=3"));
  security.insecure = false;
  security.tls_cert = "/etc/tpdiff/cert.pem";
  absl::StatusOr<LocalWorkers::Options> tls =
      LocalWorkerOptions({1, "", 0}, security, options, 5000);
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_EQ(tls->binary, DefaultWorkerBinary());
  EXPECT_THAT(tls->args, ElementsAre("--server=localhost:5000", "--models_dir=models",
                                    "--tls_ca=/etc/tpdiff/cert.pem"));
}

}  // namespace
}  // namespace tpdiff::server
