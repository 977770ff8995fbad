#include "tpdiff/client/flag_names.h"

#include <algorithm>

namespace tpdiff::client {

std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  std::vector<char*> out;
  bool flags_done = false;
  for (std::string& arg : storage) {
    if (arg == "--") flags_done = true;
    if (!flags_done && arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      std::replace(arg.begin() + 2, arg.begin() + end, '-', '_');
    }
    out.push_back(arg.data());
  }
  out.push_back(nullptr);
  return out;
}

}  // namespace tpdiff::client
