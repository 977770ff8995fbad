#ifndef TPDIFF_COMMON_GRPC_STATUS_H_
#define TPDIFF_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tpdiff::common {

// A gRPC call's status as an absl::Status with the same code and message (the two code
// enums share their numbering), for the callers of gRPC stubs. The front's own mapping the
// other way is tpdiff::server::ToGrpcStatus.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_GRPC_STATUS_H_
