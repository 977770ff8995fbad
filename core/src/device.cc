#include "tpdiff/core/device.h"

#include <torch/cuda.h>

#include "absl/strings/str_cat.h"

namespace tpdiff::core {

absl::StatusOr<torch::Device> ResolveDevice(absl::string_view name, absl::string_view field) {
  absl::StatusOr<common::DeviceSpec> spec = common::ParseDeviceSpec(name, field);
  if (!spec.ok()) return spec.status();
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  switch (spec->kind) {
    case common::DeviceSpec::Kind::kCpu:
      break;
    case common::DeviceSpec::Kind::kAuto:
      if (gpus > 0) return torch::Device(torch::kCUDA, 0);
      break;
    case common::DeviceSpec::Kind::kCuda:
      if (spec->index >= gpus) {
        return absl::FailedPreconditionError(
            absl::StrCat(field, ": ", common::DeviceSpecName(*spec),
                         " requested but this LibTorch sees ", gpus, " CUDA device(s)"));
      }
      return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(spec->index));
  }
  return torch::Device(torch::kCPU);
}

}  // namespace tpdiff::core
