#ifndef TPDIFF_CORE_DEVICE_H_
#define TPDIFF_CORE_DEVICE_H_

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/common/device.h"

namespace tpdiff::core {

// The LibTorch device for a --device value (common::ParseDeviceSpec: cpu, cuda, cuda:N,
// auto). "auto" is the first GPU when LibTorch sees one, else the CPU. FAILED_PRECONDITION
// naming `field` when a GPU is asked for that this LibTorch does not see; the parser's
// INVALID_ARGUMENT for other names.
absl::StatusOr<torch::Device> ResolveDevice(absl::string_view name,
                                            absl::string_view field = "device");

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_DEVICE_H_
