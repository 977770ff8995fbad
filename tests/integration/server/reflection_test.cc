// Server reflection (grpcurl, grpc_cli and Postman rely on it): the front lists its services
// and serves the descriptors of its API over grpc.reflection.v1alpha, on real gRPC.
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>

#include "grpc/reflection/v1alpha/reflection_wire.pb.h"
#include "tpdiff/server/front_server.h"

namespace tpdiff::server {
namespace {

namespace reflection = ::tpdiff::testing::reflection;
using ::testing::IsSupersetOf;

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FrontServerOptions options;
    options.listen = "127.0.0.1:0";
    server_ = std::make_unique<FrontServer>(options, clock_);
    ASSERT_TRUE(server_->Start().ok());
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override { server_->Shutdown(absl::ZeroDuration()); }

  // Sends each request on one ServerReflectionInfo stream (a generic call, see
  // reflection_wire.proto) and returns the answers in order.
  std::vector<reflection::ServerReflectionResponse> Ask(
      const std::vector<reflection::ServerReflectionRequest>& requests) {
    grpc::GenericStub stub(channel_);
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(
        &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    // One operation in flight at a time: start it, then wait for its completion.
    int next_tag = 0;
    auto wait = [&](int tag) {
      void* got = nullptr;
      bool ok = false;
      EXPECT_TRUE(cq.Next(&got, &ok));
      EXPECT_EQ(got, reinterpret_cast<void*>(static_cast<intptr_t>(tag)));
      return ok;
    };
    auto tag = [&] { return reinterpret_cast<void*>(static_cast<intptr_t>(++next_tag)); };
    call->StartCall(tag());
    EXPECT_TRUE(wait(next_tag));
    std::vector<reflection::ServerReflectionResponse> responses;
    for (const auto& request : requests) {
      const std::string bytes = request.SerializeAsString();
      grpc::Slice slice(bytes);
      grpc::ByteBuffer out(&slice, 1);
      call->Write(out, tag());
      if (!wait(next_tag)) break;
      grpc::ByteBuffer in;
      call->Read(&in, tag());
      if (!wait(next_tag)) break;
      std::vector<grpc::Slice> slices;
      EXPECT_TRUE(in.Dump(&slices).ok());
      std::string received;
      for (const grpc::Slice& s : slices) received.append(s.begin(), s.end());
      reflection::ServerReflectionResponse response;
      EXPECT_TRUE(response.ParseFromString(received));
      responses.push_back(response);
    }
    call->WritesDone(tag());
    wait(next_tag);
    grpc::Status status;
    call->Finish(&status, tag());
    wait(next_tag);
    EXPECT_TRUE(status.ok()) << status.error_message();
    cq.Shutdown();
    void* ignored_tag;
    bool ignored_ok;
    while (cq.Next(&ignored_tag, &ignored_ok)) {
    }
    return responses;
  }

  RealClock clock_;
  std::unique_ptr<FrontServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ReflectionTest, ListsTheApiGatewayHealthAndReflectionServices) {
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  const auto responses = Ask({request});
  ASSERT_EQ(responses.size(), 1u);
  ASSERT_TRUE(responses[0].has_list_services_response()) << responses[0].DebugString();
  std::vector<std::string> names;
  for (const auto& s : responses[0].list_services_response().service()) names.push_back(s.name());
  EXPECT_THAT(names, IsSupersetOf({"tpdiff.v1.VideoGeneration",
                                   "tpdiff.worker.v1.WorkerGateway", "grpc.health.v1.Health",
                                   "grpc.reflection.v1alpha.ServerReflection"}));
}

TEST_F(ReflectionTest, ServesTheDescriptorOfTheApi) {
  reflection::ServerReflectionRequest request;
  request.set_file_containing_symbol("tpdiff.v1.VideoGeneration");
  reflection::ServerReflectionRequest unknown;
  unknown.set_file_containing_symbol("tpdiff.v1.NoSuchService");
  const auto responses = Ask({request, unknown});
  ASSERT_EQ(responses.size(), 2u);
  ASSERT_TRUE(responses[0].has_file_descriptor_response()) << responses[0].DebugString();
  // The file that declares the service comes with its dependencies; find it and check that a
  // client could call Generate from what reflection says.
  bool found = false;
  for (const std::string& bytes : responses[0].file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    for (const auto& service : file.service()) {
      if (file.package() + "." + service.name() != "tpdiff.v1.VideoGeneration") continue;
      found = true;
      std::vector<std::string> methods;
      for (const auto& method : service.method()) {
        methods.push_back(method.name());
        if (method.name() == "Generate") {
          EXPECT_TRUE(method.server_streaming());
          EXPECT_EQ(method.input_type(), ".tpdiff.v1.GenerateRequest");
          EXPECT_EQ(method.output_type(), ".tpdiff.v1.JobEvent");
        }
      }
      EXPECT_THAT(methods, IsSupersetOf({"Generate", "SubmitJob", "WatchJob", "GetJob",
                                         "CancelJob", "ListModels"}));
    }
  }
  EXPECT_TRUE(found);
  ASSERT_TRUE(responses[1].has_error_response()) << responses[1].DebugString();
  EXPECT_EQ(responses[1].error_response().error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace tpdiff::server
