#include "tpdiff/common/files.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace tpdiff::common {

absl::StatusOr<std::string> ReadFileContents(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace tpdiff::common
