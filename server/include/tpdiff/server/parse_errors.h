#ifndef TPDIFF_SERVER_PARSE_ERRORS_H_
#define TPDIFF_SERVER_PARSE_ERRORS_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

namespace tpdiff::server {

// The status a unary or server-streaming call gets when its request bytes are not a valid
// protobuf encoding of the method's request type:
// INVALID_ARGUMENT "request: the message sent to <method> could not be parsed as its request
// type (not a valid protobuf encoding)".
std::string UnparsableRequestMessage(const std::string& method);

// gRPC 1.51's callback handlers answer a request that fails to parse with UNIMPLEMENTED and an
// empty message (server_callback_handlers.h: the deserialization status is dropped and an
// "unimplemented" reactor finishes the call), which reads as "no such method". The interceptors
// this factory makes see the failed parse (the request message is absent at POST_RECV_MESSAGE)
// and rewrite exactly that status, at PRE_SEND_STATUS, to INVALID_ARGUMENT with
// UnparsableRequestMessage. Calls whose request parsed, and unknown methods, are untouched.
//
// Messages read later on client- or bidi-streams are not covered: there a failed parse and
// the end of the stream look alike to an interceptor (both report no message), and the
// reactor sees a failed read.
//
// Thread safety: gRPC creates one interceptor per call and runs its hooks in order.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeUnparsableRequestInterceptorFactory();

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_PARSE_ERRORS_H_
