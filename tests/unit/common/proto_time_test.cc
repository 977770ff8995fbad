#include "tpdiff/common/proto_time.h"

#include <gtest/gtest.h>

namespace tpdiff::common {
namespace {

TEST(ProtoTimeTest, TimestampsRoundTripWithNanosInRange) {
  const absl::Time t = absl::FromUnixNanos(1700000000123456789);
  const google::protobuf::Timestamp p = ToProtoTimestamp(t);
  EXPECT_EQ(p.seconds(), 1700000000);
  EXPECT_EQ(p.nanos(), 123456789);
  EXPECT_EQ(FromProtoTimestamp(p), t);
  // Before the epoch the nanos stay positive and the seconds round down.
  const google::protobuf::Timestamp before = ToProtoTimestamp(absl::FromUnixNanos(-1));
  EXPECT_EQ(before.seconds(), -1);
  EXPECT_EQ(before.nanos(), 999999999);
  EXPECT_EQ(FromProtoTimestamp(before), absl::FromUnixNanos(-1));
}

TEST(ProtoTimeTest, DurationsRoundTripWithNanosSharingTheSign) {
  const google::protobuf::Duration p = ToProtoDuration(absl::Milliseconds(1500));
  EXPECT_EQ(p.seconds(), 1);
  EXPECT_EQ(p.nanos(), 500000000);
  EXPECT_EQ(FromProtoDuration(p), absl::Milliseconds(1500));
  const google::protobuf::Duration negative = ToProtoDuration(-absl::Milliseconds(1500));
  EXPECT_EQ(negative.seconds(), -1);
  EXPECT_EQ(negative.nanos(), -500000000);
  EXPECT_EQ(FromProtoDuration(negative), -absl::Milliseconds(1500));
  EXPECT_EQ(FromProtoDuration(ToProtoDuration(absl::ZeroDuration())), absl::ZeroDuration());
}

TEST(ProtoTimeTest, InfiniteValuesKeepValidNanos) {
  EXPECT_EQ(ToProtoDuration(absl::InfiniteDuration()).nanos(), 0);
  EXPECT_GT(ToProtoDuration(absl::InfiniteDuration()).seconds(), 0);
  EXPECT_EQ(ToProtoTimestamp(absl::InfiniteFuture()).nanos(), 0);
}

}  // namespace
}  // namespace tpdiff::common
