#include "tpdiff/server/security.h"

#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tpdiff/server/job_store.h"

namespace tpdiff::server {
namespace {

using ::testing::HasSubstr;

TEST(WorkerAuthenticatorTest, NothingConfiguredAcceptsEveryone) {
  WorkerAuthenticator auth(WorkerAuthOptions{});
  EXPECT_TRUE(auth.Check(/*peer_cert_verified=*/false, "").ok());
}

TEST(WorkerAuthenticatorTest, SecretMustMatchExactly) {
  WorkerAuthenticator auth(WorkerAuthOptions{false, "0123456789abcdef-secret"});
  EXPECT_TRUE(auth.Check(false, "0123456789abcdef-secret").ok());
  for (const char* wrong : {"", "0123456789abcdef-secreT", "0123456789abcdef-secret-", "x"}) {
    absl::Status status = auth.Check(false, wrong);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << wrong;
    EXPECT_THAT(status.message(), HasSubstr(kWorkerSecretMetadata));
  }
}

TEST(WorkerAuthenticatorTest, ClientCertificateRequiredWhenConfigured) {
  WorkerAuthenticator auth(WorkerAuthOptions{true, ""});
  EXPECT_TRUE(auth.Check(/*peer_cert_verified=*/true, "").ok());
  absl::Status status = auth.Check(false, "anything");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr("client certificate"));
}

TEST(WorkerAuthenticatorTest, BothMechanismsMustPass) {
  WorkerAuthenticator auth(WorkerAuthOptions{true, "0123456789abcdef-secret"});
  EXPECT_TRUE(auth.Check(true, "0123456789abcdef-secret").ok());
  EXPECT_FALSE(auth.Check(true, "").ok());
  EXPECT_FALSE(auth.Check(false, "0123456789abcdef-secret").ok());
}

class SecretFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { unlink(path_.c_str()); }
  const std::string path_ = ::testing::TempDir() + "/worker-secret-" + std::to_string(getpid());
};

TEST_F(SecretFileTest, TrailingNewlineIsDropped) {
  EXPECT_EQ(*ReadSecretFile(Write("0123456789abcdef-secret\n")), "0123456789abcdef-secret");
}

TEST_F(SecretFileTest, ShortSecretIsRejectedWithoutShowingIt) {
  absl::StatusOr<std::string> secret = ReadSecretFile(Write("short-one\n"));
  ASSERT_EQ(secret.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(secret.status().message(), HasSubstr("minimum of 16"));
  EXPECT_THAT(secret.status().message(), ::testing::Not(HasSubstr("short-one")));
  EXPECT_EQ(ReadSecretFile("/nonexistent/secret").status().code(), absl::StatusCode::kNotFound);
}

TEST(RandomSecretTest, IsLongHexAndFresh) {
  const std::string a = RandomSecret(), b = RandomSecret();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
}

// Ownership: a job is visible only to its tenant, and another tenant gets exactly the answer
// for a job that does not exist.
class OwnershipTest : public ::testing::Test {
 protected:
  void Create(const std::string& job_id, const std::string& request_id, const std::string& tenant) {
    tpdiff::v1::Job job;
    job.set_job_id(job_id);
    job.set_request_id(request_id);
    ASSERT_TRUE(store_.Create(job, tenant).ok());
  }
  FakeClock clock_;
  InMemoryJobStore store_{clock_, absl::Minutes(10), 1 << 20};
};

TEST_F(OwnershipTest, OtherTenantsJobLooksUnknown) {
  Create("job-1", "req", "a");
  EXPECT_TRUE(CheckAccess(store_, "job-1", "a").ok());
  const absl::Status other = CheckAccess(store_, "job-1", "b");
  const absl::Status unknown = CheckAccess(store_, "job-2", "b");
  EXPECT_EQ(other.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(other.message(), "job job-1 not found");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(CheckAccess(store_, "job-1", "").ok());  // anonymous is a tenant too
}

TEST_F(OwnershipTest, RequestIdsArePerTenant) {
  Create("job-a", "same", "a");
  Create("job-b", "same", "b");
  EXPECT_EQ(store_.FindByRequestId("a", "same"), "job-a");
  EXPECT_EQ(store_.FindByRequestId("b", "same"), "job-b");
  EXPECT_FALSE(store_.FindByRequestId("c", "same").has_value());
  EXPECT_EQ(*store_.Owner("job-b"), "b");
}

}  // namespace
}  // namespace tpdiff::server
