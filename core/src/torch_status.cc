#include "tpdiff/core/torch_status.h"

namespace tpdiff::core {

std::string TorchErrorSummary(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  const auto nl = msg.find('\n');
  if (nl != std::string::npos) msg.resize(nl);
  return msg;
}

}  // namespace tpdiff::core
