#ifndef TPDIFF_CORE_DEVICE_TIMER_H_
#define TPDIFF_CORE_DEVICE_TIMER_H_

#include <chrono>

#include <torch/types.h>

namespace tpdiff::core {

// Waits until `device` has finished the work queued on it: a CUDA device synchronisation, a
// no-op on the CPU (whose ops have finished when they return).
void SynchronizeDevice(const torch::Device& device);

// Wall time of work run on a device. CUDA kernels run asynchronously to the host, so a plain
// clock read after launching a stage measures the launches, not the stage; this timer
// synchronises the device before it reads the clock (at the start too, so work queued earlier
// is not charged to it). On the CPU it is the steady clock alone.
//
// Not thread-safe; one per measuring thread.
class DeviceTimer {
 public:
  explicit DeviceTimer(torch::Device device);
  // Seconds since construction or the last Lap, once the device is idle.
  double Seconds() const;
  // Seconds(), then starts the next interval from the same instant.
  double Lap();

 private:
  using Clock = std::chrono::steady_clock;
  torch::Device device_;
  Clock::time_point begin_;
};

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_DEVICE_TIMER_H_
