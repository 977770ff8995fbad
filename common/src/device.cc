#include "tpdiff/common/device.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tpdiff::common {

absl::StatusOr<DeviceSpec> ParseDeviceSpec(absl::string_view name, absl::string_view field) {
  const std::string lower = absl::AsciiStrToLower(name);
  absl::string_view rest = lower;
  DeviceSpec spec;
  if (rest == "cpu") return spec;
  if (rest == "auto") {
    spec.kind = DeviceSpec::Kind::kAuto;
    return spec;
  }
  if (absl::ConsumePrefix(&rest, "cuda")) {
    spec.kind = DeviceSpec::Kind::kCuda;
    if (rest.empty()) return spec;
    if (absl::ConsumePrefix(&rest, ":") && !rest.empty() &&
        rest.find_first_not_of("0123456789") == absl::string_view::npos &&
        absl::SimpleAtoi(rest, &spec.index)) {
      return spec;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": \"", name, "\" is not one of cpu, cuda, cuda:N, auto"));
}

std::string DeviceSpecName(const DeviceSpec& spec) {
  switch (spec.kind) {
    case DeviceSpec::Kind::kAuto:
      return "auto";
    case DeviceSpec::Kind::kCuda:
      return absl::StrCat("cuda:", spec.index);
    case DeviceSpec::Kind::kCpu:
      break;
  }
  return "cpu";
}

}  // namespace tpdiff::common
