#include "tpdiff/server/parse_errors.h"

#include "absl/strings/str_cat.h"

namespace tpdiff::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class UnparsableRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit UnparsableRequestInterceptor(grpc::experimental::ServerRpcInfo* info) : info_(info) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      // Only the first message of a call with one request arrives through the handler's
      // Deserialize; later stream reads report no message at the end of the stream too.
      if (!first_message_seen_ && has_single_request() && methods->GetRecvMessage() == nullptr) {
        unparsable_ = true;
      }
      first_message_seen_ = true;
    }
    if (unparsable_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      methods->ModifySendStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                             UnparsableRequestMessage(info_->method())));
    }
    methods->Proceed();
  }

 private:
  bool has_single_request() const {
    const auto type = info_->type();
    return type == grpc::experimental::ServerRpcInfo::Type::UNARY ||
           type == grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING;
  }

  grpc::experimental::ServerRpcInfo* const info_;
  bool first_message_seen_ = false;
  bool unparsable_ = false;
};

class UnparsableRequestInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new UnparsableRequestInterceptor(info);  // gRPC owns and deletes it
  }
};

}  // namespace

std::string UnparsableRequestMessage(const std::string& method) {
  return absl::StrCat("request: the message sent to ", method,
                      " could not be parsed as its request type (not a valid protobuf "
                      "encoding)");
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeUnparsableRequestInterceptorFactory() {
  return std::make_unique<UnparsableRequestInterceptorFactory>();
}

}  // namespace tpdiff::server
