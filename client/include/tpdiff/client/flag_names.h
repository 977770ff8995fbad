#ifndef TPDIFF_CLIENT_FLAG_NAMES_H_
#define TPDIFF_CLIENT_FLAG_NAMES_H_

#include <string>
#include <vector>

namespace tpdiff::client {

// Accepts --flag-name as well as absl's --flag_name (docs, probes and manifests spell flags
// with dashes): returns argv with '-' turned into '_' in every flag name (the part before
// '='), backed by `storage`, null-terminated. Arguments after a bare "--" stay as they are.
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage);

}  // namespace tpdiff::client

#endif  // TPDIFF_CLIENT_FLAG_NAMES_H_
