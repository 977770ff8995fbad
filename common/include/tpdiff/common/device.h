#ifndef TPDIFF_COMMON_DEVICE_H_
#define TPDIFF_COMMON_DEVICE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpdiff::common {

// A device named on a command line (--device), parsed without LibTorch; the binaries that
// run models map it to a torch::Device and check that the device exists.
struct DeviceSpec {
  enum class Kind {
    kAuto,  // the first GPU when there is one, else the CPU
    kCpu,
    kCuda,
  };
  Kind kind = Kind::kCpu;
  int index = 0;  // CUDA ordinal; 0 otherwise

  bool operator==(const DeviceSpec& other) const {
    return kind == other.kind && index == other.index;
  }
};

// "cpu", "cuda" (= "cuda:0"), "cuda:N" or "auto", in any case. INVALID_ARGUMENT naming
// `field` and the accepted spellings otherwise.
absl::StatusOr<DeviceSpec> ParseDeviceSpec(absl::string_view name,
                                           absl::string_view field = "device");

// "auto", "cpu" or "cuda:N": what ParseDeviceSpec reads back as the same spec.
std::string DeviceSpecName(const DeviceSpec& spec);

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_DEVICE_H_
