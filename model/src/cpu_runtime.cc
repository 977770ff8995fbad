#include "tpdiff/model/cpu_runtime.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace tpdiff::model {

void ReexecWithPassiveOpenMpWait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Only reached if execv failed (e.g. no /proc): carry on with the active policy.
}

int ConfigureCpuThreads(int requested) {
  const int n = requested > 0 ? requested : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(1, n));
  return std::max(1, n);
}

}  // namespace tpdiff::model
