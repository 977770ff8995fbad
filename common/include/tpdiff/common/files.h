#ifndef TPDIFF_COMMON_FILES_H_
#define TPDIFF_COMMON_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpdiff::common {

// The whole file a flag names (a certificate, a key, a secret, a tenants file); NOT_FOUND
// "<flag>: cannot read <path>" when it cannot be opened.
absl::StatusOr<std::string> ReadFileContents(const std::string& path, absl::string_view flag);

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_FILES_H_
