#include "tpdiff/common/device.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tpdiff::common {
namespace {

using Kind = DeviceSpec::Kind;

TEST(DeviceSpecTest, ParsesEverySpelling) {
  EXPECT_EQ(*ParseDeviceSpec("cpu"), (DeviceSpec{Kind::kCpu, 0}));
  EXPECT_EQ(*ParseDeviceSpec("CPU"), (DeviceSpec{Kind::kCpu, 0}));
  EXPECT_EQ(*ParseDeviceSpec("auto"), (DeviceSpec{Kind::kAuto, 0}));
  EXPECT_EQ(*ParseDeviceSpec("cuda"), (DeviceSpec{Kind::kCuda, 0}));
  EXPECT_EQ(*ParseDeviceSpec("cuda:3"), (DeviceSpec{Kind::kCuda, 3}));
}

TEST(DeviceSpecTest, RejectsOtherNamesNamingTheFieldAndTheChoices) {
  for (const char* bad :
       {"tpu", "", "cuda:", "cuda:-1", "cuda:x", "cuda0", "cpu:0", "cuda:99999999999"}) {
    absl::StatusOr<DeviceSpec> spec = ParseDeviceSpec(bad, "--device");
    ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(spec.status().message(), ::testing::HasSubstr("--device"));
    EXPECT_THAT(spec.status().message(), ::testing::HasSubstr("cpu, cuda, cuda:N, auto"));
  }
}

TEST(DeviceSpecTest, NamesReadBackAsTheSameSpec) {
  for (const DeviceSpec& spec : {DeviceSpec{Kind::kCpu, 0}, DeviceSpec{Kind::kAuto, 0},
                                 DeviceSpec{Kind::kCuda, 0}, DeviceSpec{Kind::kCuda, 7}}) {
    EXPECT_EQ(*ParseDeviceSpec(DeviceSpecName(spec)), spec) << DeviceSpecName(spec);
  }
  EXPECT_EQ(DeviceSpecName({Kind::kCuda, 1}), "cuda:1");
}

}  // namespace
}  // namespace tpdiff::common
