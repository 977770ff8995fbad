#include "tpdiff/common/grpc_status.h"

namespace tpdiff::common {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace tpdiff::common
