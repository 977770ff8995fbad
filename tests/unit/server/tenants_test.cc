#include "tpdiff/server/tenants.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tpdiff::server {
namespace {

using ::testing::HasSubstr;

// sha256("key-a") and sha256("key-b"), as `printf %s key-a | sha256sum` prints them.
const std::string kHashA = Sha256Hex("key-a");
const std::string kHashB = Sha256Hex("key-b");

std::string TenantsJson(const std::string& extra_a = "") {
  return R"({"tenants": [
    {"name": "a", "api_key_sha256": [")" + kHashA + R"("])" + extra_a + R"(},
    {"name": "b", "api_key_sha256": [")" + kHashB + R"("]}]})";
}

TEST(Sha256HexTest, MatchesKnownDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
}

TEST(ParseTenantsTest, ReadsNamesHashesAndLimits) {
  absl::StatusOr<std::vector<TenantConfig>> tenants = ParseTenants(TenantsJson(
      R"(, "max_queued_jobs": 3, "requests_per_second": 2.5, "burst": 5, "max_streams": 1)"));
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  ASSERT_EQ(tenants->size(), 2u);
  EXPECT_EQ((*tenants)[0].name, "a");
  EXPECT_EQ((*tenants)[0].key_sha256, std::vector<std::string>{kHashA});
  EXPECT_EQ((*tenants)[0].limits.max_queued_jobs, 3u);
  EXPECT_DOUBLE_EQ((*tenants)[0].limits.requests_per_second, 2.5);
  EXPECT_DOUBLE_EQ((*tenants)[0].limits.burst, 5);
  EXPECT_EQ((*tenants)[0].limits.max_streams, 1u);
  // Limits left out take the defaults.
  EXPECT_EQ((*tenants)[1].limits.max_queued_jobs, TenantLimits().max_queued_jobs);
  EXPECT_EQ((*tenants)[1].limits.max_streams, TenantLimits().max_streams);
}

TEST(ParseTenantsTest, UpperCaseHashesAreAccepted) {
  std::string upper = kHashA;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  absl::StatusOr<std::vector<TenantConfig>> tenants =
      ParseTenants(R"({"tenants": [{"name": "a", "api_key_sha256": [")" + upper + R"("]}]})");
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  EXPECT_EQ((*tenants)[0].key_sha256[0], kHashA);
}

TEST(ParseTenantsTest, RejectsBadFilesNamingTheField) {
  struct Case {
    std::string json;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"not json", "cannot parse"},
      {R"({"tenants": {}})", "an array of tenants"},
      {R"({"tenants": [{"api_key_sha256": [")" + kHashA + R"("]}]})", "tenants[0].name"},
      {R"({"tenants": [{"name": "a"}]})", "tenants[0].api_key_sha256"},
      {R"({"tenants": [{"name": "a", "api_key_sha256": ["key-a"]}]})", "64 hex digits"},
      {R"({"tenants": [{"name": "a", "api_key_sha256": [")" + kHashA + R"("]},
                       {"name": "a", "api_key_sha256": [")" + kHashB + R"("]}]})",
       "\"a\" repeats"},
      {R"({"tenants": [{"name": "a", "api_key_sha256": [")" + kHashA + R"("]},
                       {"name": "b", "api_key_sha256": [")" + kHashA + R"("]}]})",
       "listed twice"},
      {TenantsJson(R"(, "max_streams": -1)"), "tenants[0].max_streams"},
      {TenantsJson(R"(, "burst": "x")"), "tenants[0].burst"},
      {TenantsJson(R"(, "requests_per_second": 5, "burst": 0.5)"), "tenants[0].burst"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<TenantConfig>> tenants = ParseTenants(c.json);
    ASSERT_FALSE(tenants.ok()) << c.json;
    EXPECT_EQ(tenants.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(tenants.status().message(), HasSubstr(c.message)) << c.json;
  }
}

TEST(ReadTenantsFileTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadTenantsFile("/nonexistent/tenants.json").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TokenBucketTest, AllowsBurstThenRefillsWithTime) {
  FakeClock clock;
  TokenBucket bucket(/*rate=*/2, /*burst=*/3, clock.Now());
  EXPECT_TRUE(bucket.TryTake(clock.Now()));
  EXPECT_TRUE(bucket.TryTake(clock.Now()));
  EXPECT_TRUE(bucket.TryTake(clock.Now()));
  EXPECT_FALSE(bucket.TryTake(clock.Now()));
  clock.Advance(absl::Milliseconds(499));  // 0.998 tokens: not yet one
  EXPECT_FALSE(bucket.TryTake(clock.Now()));
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(bucket.TryTake(clock.Now()));
  EXPECT_FALSE(bucket.TryTake(clock.Now()));
  clock.Advance(absl::Hours(1));  // refills to the burst, no further
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bucket.TryTake(clock.Now()));
  EXPECT_FALSE(bucket.TryTake(clock.Now()));
}

class TenantsTest : public ::testing::Test {
 protected:
  TenantsTest() {
    TenantConfig a{"a", {kHashA}, TenantLimits{}};
    a.limits.requests_per_second = 1;
    a.limits.burst = 2;
    a.limits.max_streams = 1;
    TenantConfig b{"b", {kHashB}, TenantLimits{}};
    b.limits.requests_per_second = 0;  // unlimited
    tenants_ = std::make_unique<Tenants>(std::vector<TenantConfig>{a, b}, clock_);
  }
  FakeClock clock_;
  std::unique_ptr<Tenants> tenants_;
};

TEST_F(TenantsTest, BearerKeyMapsToItsTenant) {
  EXPECT_EQ(tenants_->Authenticate("Bearer key-a")->tenant, "a");
  EXPECT_EQ(tenants_->Authenticate("bearer key-b")->tenant, "b");
  EXPECT_EQ(tenants_->Authenticate("Bearer key-a")->limits.max_streams, 1u);
}

TEST_F(TenantsTest, MissingMalformedOrUnknownKeysAreUnauthenticatedWithoutEchoingThem) {
  for (const char* header : {"", "key-a", "Basic key-a", "Bearer ", "Bearer key-c"}) {
    absl::StatusOr<Caller> caller = tenants_->Authenticate(header);
    ASSERT_FALSE(caller.ok()) << header;
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated) << header;
    EXPECT_THAT(caller.status().message(), ::testing::Not(HasSubstr("key-")));
  }
}

TEST_F(TenantsTest, RateLimitIsPerTenantAndNamesTheLimit) {
  const Caller a = *tenants_->Authenticate("Bearer key-a");
  const Caller b = *tenants_->Authenticate("Bearer key-b");
  EXPECT_TRUE(tenants_->AdmitRequest(a).ok());
  EXPECT_TRUE(tenants_->AdmitRequest(a).ok());
  absl::Status limited = tenants_->AdmitRequest(a);
  EXPECT_EQ(limited.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(limited.message(), HasSubstr("requests_per_second 1"));
  EXPECT_THAT(limited.message(), HasSubstr("tenant \"a\""));
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(tenants_->AdmitRequest(b).ok());  // unlimited
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(tenants_->AdmitRequest(a).ok());
  EXPECT_FALSE(tenants_->AdmitRequest(a).ok());
}

TEST_F(TenantsTest, StreamSlotsAreBoundedAndReleased) {
  const Caller a = *tenants_->Authenticate("Bearer key-a");
  ASSERT_TRUE(tenants_->AcquireStream(a).ok());
  absl::Status second = tenants_->AcquireStream(a);
  EXPECT_EQ(second.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(second.message(), HasSubstr("max_streams 1"));
  EXPECT_EQ(tenants_->open_streams("a"), 1u);
  tenants_->ReleaseStream(a);
  EXPECT_EQ(tenants_->open_streams("a"), 0u);
  EXPECT_TRUE(tenants_->AcquireStream(a).ok());
}

}  // namespace
}  // namespace tpdiff::server
