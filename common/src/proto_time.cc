#include "tpdiff/common/proto_time.h"

#include <cstdint>

namespace tpdiff::common {

namespace {
constexpr int64_t kNanosPerSecond = 1000000000;
}  // namespace

google::protobuf::Timestamp ToProtoTimestamp(absl::Time time) {
  google::protobuf::Timestamp out;
  const int64_t seconds = absl::ToUnixSeconds(time);  // rounds down
  const int64_t nanos = absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds));
  out.set_seconds(seconds);
  out.set_nanos(nanos >= 0 && nanos < kNanosPerSecond ? static_cast<int32_t>(nanos) : 0);
  return out;
}

absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

google::protobuf::Duration ToProtoDuration(absl::Duration duration) {
  google::protobuf::Duration out;
  const int64_t seconds = absl::ToInt64Seconds(duration);  // rounds toward zero
  const int64_t nanos = absl::ToInt64Nanoseconds(duration - absl::Seconds(seconds));
  out.set_seconds(seconds);
  out.set_nanos(nanos > -kNanosPerSecond && nanos < kNanosPerSecond ? static_cast<int32_t>(nanos)
                                                                    : 0);
  return out;
}

absl::Duration FromProtoDuration(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

}  // namespace tpdiff::common
