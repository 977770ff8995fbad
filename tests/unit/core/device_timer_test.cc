#include "tpdiff/core/device_timer.h"

#include <chrono>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

namespace tpdiff::core {
namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST(DeviceTimerTest, LapsSplitTheTimeTheTimerMeasuresInAll) {
  DeviceTimer total(torch::kCPU);
  DeviceTimer laps(torch::kCPU);
  const torch::Tensor a = torch::rand({256, 256});
  const torch::Tensor b = a.matmul(a);
  const double first = laps.Lap();
  const torch::Tensor c = b.matmul(a);
  const double second = laps.Lap();
  const double all = total.Seconds();
  EXPECT_GT(first, 0);
  EXPECT_GT(second, 0);
  EXPECT_LE(first + second, all);
  EXPECT_GT(c.sum().item<float>(), 0);
  SynchronizeDevice(torch::kCPU);  // a no-op that must not throw
}

// On CUDA the timer must wait for queued kernels: once Seconds() returned, the device is idle,
// so another synchronisation is immediate next to the work measured.
TEST(DeviceTimerTest, OnCudaTheClockIsReadAfterQueuedKernelsFinish) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device cuda(torch::kCUDA, 0);
  torch::Tensor a = torch::rand({4096, 4096}, torch::TensorOptions(cuda));
  SynchronizeDevice(cuda);
  DeviceTimer timer(cuda);
  for (int i = 0; i < 20; ++i) a = a.matmul(a).clamp(-1, 1);  // queued, not finished
  const double measured = timer.Seconds();
  const auto after = std::chrono::steady_clock::now();
  torch::cuda::synchronize(0);
  const double left = Since(after);
  EXPECT_GT(measured, 0);
  EXPECT_LT(left, 0.05 * measured) << "measured " << measured << " s, then waited " << left;
}

}  // namespace
}  // namespace tpdiff::core
