#ifndef TPDIFF_SPEC_FILES_H_
#define TPDIFF_SPEC_FILES_H_

// Small file helpers for package and checkpoint files.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tpdiff::spec {

// NOT_FOUND "<path>: no such file"; INTERNAL on other I/O failures.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// Writes <path>.tmp and renames it over `path`. INTERNAL on I/O failure.
absl::Status WriteStringToFileAtomic(const std::string& path, const std::string& data);

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_FILES_H_
