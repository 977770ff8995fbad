#include "tpdiff/common/channel_security.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tpdiff::common {
namespace {

using ::testing::HasSubstr;

TEST(MakeChannelCredentialsTest, InsecureIsPlaintextWhenAskedFor) {
  ChannelSecurity security;
  security.insecure = true;
  EXPECT_TRUE(MakeChannelCredentials(security).ok());
}

TEST(MakeChannelCredentialsTest, ApiKeyIsNeverSentInPlaintext) {
  ChannelSecurity security;
  security.insecure = true;
  security.api_key = "secret-key";
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeChannelCredentials(security);
  ASSERT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(creds.status().message(), HasSubstr("only sent over TLS"));
  EXPECT_THAT(creds.status().message(), ::testing::Not(HasSubstr("secret-key")));
}

TEST(MakeChannelCredentialsTest, ConflictingOrIncompleteFlagsAreRejected) {
  ChannelSecurity insecure_with_ca;
  insecure_with_ca.insecure = true;
  insecure_with_ca.ca_file = "/ca.pem";
  EXPECT_EQ(MakeChannelCredentials(insecure_with_ca).status().code(),
            absl::StatusCode::kInvalidArgument);
  ChannelSecurity cert_only;
  cert_only.cert_file = "/worker.pem";
  EXPECT_THAT(MakeChannelCredentials(cert_only).status().message(), HasSubstr("go together"));
}

TEST(MakeChannelCredentialsTest, ServerNameNeedsTls) {
  ChannelSecurity security;
  security.insecure = true;
  security.server_name = "tpdiff-front";
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel("localhost:1", security);
  ASSERT_EQ(channel.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(channel.status().message(), HasSubstr("--tls-server-name"));
  security.insecure = false;
  EXPECT_TRUE(MakeChannel("localhost:1", security).ok());
}

TEST(MakeChannelCredentialsTest, UnreadableCaNamesTheFlag) {
  ChannelSecurity security;
  security.ca_file = "/nonexistent/ca.pem";
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeChannelCredentials(security);
  ASSERT_EQ(creds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(creds.status().message(), HasSubstr("--tls-ca"));
}

TEST(MakeChannelCredentialsTest, TlsWithSystemRootsAndKeyBuilds) {
  ChannelSecurity security;
  security.api_key = "k";
  EXPECT_TRUE(MakeChannelCredentials(security).ok());
}

}  // namespace
}  // namespace tpdiff::common
