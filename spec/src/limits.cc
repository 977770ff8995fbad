#include "tpdiff/spec/limits.h"

#include "absl/strings/str_cat.h"

namespace tpdiff::spec {

std::string EchoForMessage(absl::string_view value) {
  if (value.size() <= kMaxEchoedBytes) return std::string(value);
  return absl::StrCat(value.substr(0, kMaxEchoedBytes), "... (", value.size(), " bytes)");
}

}  // namespace tpdiff::spec
