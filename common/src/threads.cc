#include "tpdiff/common/threads.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tpdiff::common {

absl::StatusOr<int> IntraOpThreads(int requested, int hardware_threads) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads: ", requested, " is negative (0 = one per core)"));
  }
  return requested > 0 ? requested : std::max(1, hardware_threads);
}

absl::StatusOr<int> IntraOpThreads(int requested) {
  return IntraOpThreads(requested, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace tpdiff::common
