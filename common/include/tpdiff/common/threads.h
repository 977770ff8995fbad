#ifndef TPDIFF_COMMON_THREADS_H_
#define TPDIFF_COMMON_THREADS_H_

#include "absl/status/statusor.h"

namespace tpdiff::common {

// The intra-op thread count for --threads=`requested`: `requested` when > 0, else
// `hardware_threads` (the machine's cores; at least 1). INVALID_ARGUMENT for a negative
// request. The caller hands the result to LibTorch (at::set_num_threads); this library does
// not link LibTorch.
absl::StatusOr<int> IntraOpThreads(int requested, int hardware_threads);
// The same with std::thread::hardware_concurrency().
absl::StatusOr<int> IntraOpThreads(int requested);

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_THREADS_H_
