#ifndef TPDIFF_CLIENT_HEALTH_H_
#define TPDIFF_CLIENT_HEALTH_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tpdiff::client {

// grpc.health.v1.Health/Check for `service` ("" = the whole server). Returns the serving
// status name: "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" or "UNKNOWN"; an RPC failure is
// the RPC's status. The two one-field messages are encoded by hand over a generic stub, so
// no health.proto is linked in (it would clash with any other copy in the same binary).
absl::StatusOr<std::string> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                        const std::string& service, absl::Duration deadline);

}  // namespace tpdiff::client

#endif  // TPDIFF_CLIENT_HEALTH_H_
