#ifndef TPDIFF_CORE_CANCELLATION_H_
#define TPDIFF_CORE_CANCELLATION_H_

#include <atomic>

namespace tpdiff::core {

// Set from any thread; polled by the sampler before every network call.
class CancellationToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> cancelled_{false};
};

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_CANCELLATION_H_
