#ifndef TPDIFF_CORE_TORCH_STATUS_H_
#define TPDIFF_CORE_TORCH_STATUS_H_

// LibTorch reports errors by exception; module boundaries here speak absl::Status. This is
// the one adapter that converts: call LibTorch inside TorchCall.

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include <c10/util/Exception.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tpdiff::core {

// First line of a LibTorch message (the rest is a C++ backtrace).
std::string TorchErrorSummary(const c10::Error& e);

// Runs fn(); returns its value, or INTERNAL with `what` and LibTorch's message.
template <typename Fn>
auto TorchCall(const char* what, Fn&& fn) -> absl::StatusOr<decltype(fn())> {
  try {
    return std::forward<Fn>(fn)();
  } catch (const c10::Error& e) {
    return absl::InternalError(std::string(what) + ": " + TorchErrorSummary(e));
  } catch (const std::exception& e) {
    return absl::InternalError(std::string(what) + ": " + e.what());
  }
}

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_TORCH_STATUS_H_
