#ifndef TPDIFF_COMMON_PROTO_TIME_H_
#define TPDIFF_COMMON_PROTO_TIME_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace tpdiff::common {

// Exact conversions between Abseil time and the protobuf well-known types (nanosecond
// resolution; a proto's nanos share the sign of its seconds, a Timestamp's nanos are in
// [0, 1e9)). Infinite values saturate to the int64 range of seconds.
google::protobuf::Timestamp ToProtoTimestamp(absl::Time time);
absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& timestamp);
google::protobuf::Duration ToProtoDuration(absl::Duration duration);
absl::Duration FromProtoDuration(const google::protobuf::Duration& duration);

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_PROTO_TIME_H_
