#ifndef TPDIFF_SERVER_STATUS_H_
#define TPDIFF_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tpdiff::server {

// The one mapping from absl::Status (used across module boundaries) to grpc::Status (what
// clients see). The numeric codes coincide; the message is kept as is.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The canonical upper-case code name ("OK", "INVALID_ARGUMENT", ...), used as a bounded
// metric label.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_STATUS_H_
