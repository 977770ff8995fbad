// Requests whose bytes are not a protobuf message, sent with gRPC's generic (raw bytes) stub
// to a real front on 127.0.0.1: they get INVALID_ARGUMENT naming the method, not gRPC's bare
// UNIMPLEMENTED (server/include/tpdiff/server/parse_errors.h).
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "tpdiff/server/front_server.h"
#include "tpdiff/server/parse_errors.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {
namespace {

using ::testing::HasSubstr;

// Field 1 with wire type 7, which does not exist; and a length-delimited field 1 that
// announces 5 bytes but carries 2.
const std::string kBadWireType("\x0f\x0f\x0f", 3);
const std::string kTruncated("\x0a\x05" "ab", 4);

grpc::ByteBuffer Bytes(const std::string& data) {
  grpc::Slice slice(data);
  return grpc::ByteBuffer(&slice, 1);
}

class UnparsableRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FrontServerOptions options;
    options.listen = "127.0.0.1:0";
    options.tick_interval = absl::Milliseconds(20);
    server_ = std::make_unique<FrontServer>(options, clock_);
    ASSERT_TRUE(server_->Start().ok());
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
  }
  void TearDown() override { server_->Shutdown(absl::ZeroDuration()); }

  // One unary call carrying `payload` as the request bytes.
  grpc::Status Unary(const std::string& method, const std::string& payload) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::CompletionQueue cq;
    auto call = stub_->PrepareUnaryCall(&context, method, Bytes(payload), &cq);
    call->StartCall();
    grpc::ByteBuffer response;
    grpc::Status status;
    call->Finish(&response, &status, this);
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(tag, this);
    return status;
  }

  // A server-streaming call (Generate, WatchJob) carrying `payload`; reads to the end.
  grpc::Status ServerStreaming(const std::string& method, const std::string& payload) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::CompletionQueue cq;
    auto call = stub_->PrepareCall(&context, method, &cq);
    void* tag = nullptr;
    bool ok = false;
    const auto step = [&](intptr_t expected) {
      EXPECT_TRUE(cq.Next(&tag, &ok));
      EXPECT_EQ(tag, reinterpret_cast<void*>(expected));
      return ok;
    };
    call->StartCall(reinterpret_cast<void*>(1));
    step(1);
    call->WriteLast(Bytes(payload), grpc::WriteOptions(), reinterpret_cast<void*>(2));
    step(2);
    grpc::ByteBuffer message;
    int messages = 0;
    while (true) {
      call->Read(&message, reinterpret_cast<void*>(3));
      if (!step(3)) break;
      ++messages;
    }
    EXPECT_EQ(messages, 0);
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(4));
    step(4);
    return status;
  }

  RealClock clock_;
  std::unique_ptr<FrontServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

TEST_F(UnparsableRequestTest, UnaryGarbageIsInvalidArgumentNamingTheMethod) {
  for (const std::string& payload : {kBadWireType, kTruncated}) {
    const grpc::Status status = Unary("/tpdiff.v1.VideoGeneration/GetJob", payload);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(status.error_message(),
              UnparsableRequestMessage("/tpdiff.v1.VideoGeneration/GetJob"));
    EXPECT_THAT(status.error_message(), HasSubstr("could not be parsed"));
  }
  EXPECT_EQ(Unary("/tpdiff.v1.VideoGeneration/SubmitJob", kBadWireType).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Unary("/tpdiff.v1.VideoGeneration/CancelJob", kTruncated).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(UnparsableRequestTest, ServerStreamingGarbageIsInvalidArgument) {
  for (const std::string method :
       {"/tpdiff.v1.VideoGeneration/Generate", "/tpdiff.v1.VideoGeneration/WatchJob"}) {
    const grpc::Status status = ServerStreaming(method, kBadWireType);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << method << ": " << status.error_message();
    EXPECT_EQ(status.error_message(), UnparsableRequestMessage(method));
  }
}

TEST_F(UnparsableRequestTest, ParseableRequestsAndUnknownMethodsKeepTheirStatus) {
  // The same raw path with a real GetJobRequest reaches the service.
  tpdiff::v1::GetJobRequest request;
  request.set_job_id("no-such-job");
  const grpc::Status found = Unary("/tpdiff.v1.VideoGeneration/GetJob", request.SerializeAsString());
  EXPECT_EQ(found.error_code(), grpc::StatusCode::NOT_FOUND) << found.error_message();
  EXPECT_THAT(found.error_message(), HasSubstr("no-such-job"));
  // An empty message is a valid (all-default) request: the service names the missing field.
  const grpc::Status empty = Unary("/tpdiff.v1.VideoGeneration/GetJob", "");
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.error_message(), HasSubstr("job_id"));
  // A method the server does not have stays UNIMPLEMENTED, garbage or not.
  EXPECT_EQ(Unary("/tpdiff.v1.VideoGeneration/NoSuchMethod", kBadWireType).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace tpdiff::server
