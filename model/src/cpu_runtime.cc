#include "tpdiff/model/cpu_runtime.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "tpdiff/common/threads.h"

namespace tpdiff::model {

void ReexecWithPassiveOpenMpWait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Only reached if execv failed (e.g. no /proc): carry on with the active policy.
}

int ConfigureCpuThreads(int requested) {
  // A negative request counts as 0; the flag parsers reject it before this.
  const int n = *common::IntraOpThreads(std::max(0, requested));
  at::set_num_threads(n);
  return n;
}

}  // namespace tpdiff::model
