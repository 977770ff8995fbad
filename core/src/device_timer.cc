#include "tpdiff/core/device_timer.h"

#include <torch/cuda.h>

namespace tpdiff::core {

void SynchronizeDevice(const torch::Device& device) {
  // Only reachable with a CUDA LibTorch: a CPU build never hands out a CUDA device.
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

DeviceTimer::DeviceTimer(torch::Device device) : device_(device) {
  SynchronizeDevice(device_);
  begin_ = Clock::now();
}

double DeviceTimer::Seconds() const {
  SynchronizeDevice(device_);
  return std::chrono::duration<double>(Clock::now() - begin_).count();
}

double DeviceTimer::Lap() {
  SynchronizeDevice(device_);
  const Clock::time_point now = Clock::now();
  const double seconds = std::chrono::duration<double>(now - begin_).count();
  begin_ = now;
  return seconds;
}

}  // namespace tpdiff::core
