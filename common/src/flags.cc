#include "tpdiff/common/flags.h"

#include <algorithm>
#include <utility>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

#ifndef TPDIFF_VERSION
#define TPDIFF_VERSION "unknown"
#endif

namespace tpdiff::common {

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

std::string SourceRelativePath(absl::string_view path, absl::string_view source_root) {
  if (!source_root.empty() && absl::ConsumePrefix(&path, source_root)) return std::string(path);
  absl::ConsumePrefix(&path, "./");
  return std::string(path);
}

absl::FlagsUsageConfig HelpUsageConfig(std::string source_root, std::string version) {
  absl::FlagsUsageConfig config;
  config.normalize_filename = [source_root](absl::string_view path) {
    return SourceRelativePath(path, source_root);
  };
  // absl passes the normalized name; normalizing again is harmless and keeps the filter
  // right should it ever see the raw one.
  config.contains_help_flags = [source_root](absl::string_view path) {
    const std::string file = SourceRelativePath(path, source_root);
    return !absl::StartsWith(file, "/") && !absl::StartsWith(file, "absl/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.version_string = [version] { return absl::StrCat(version, "\n"); };
  return config;
}

std::string CompiledSourceRoot() {
  constexpr absl::string_view kThisFile = __FILE__;
  constexpr absl::string_view kInRoot = "common/src/flags.cc";
  if (!absl::EndsWith(kThisFile, kInRoot)) return "";
  return std::string(kThisFile.substr(0, kThisFile.size() - kInRoot.size()));
}

std::vector<std::string> ParseCommandLine(int argc, char** argv, absl::string_view usage) {
  std::vector<std::string> storage;
  std::vector<char*> normalized = NormalizeFlagNames(argc, argv, storage);
  absl::string_view program = argc > 0 ? argv[0] : "tpdiff";
  program = program.substr(program.rfind('/') + 1);  // npos + 1 == 0: no folder
  absl::SetFlagsUsageConfig(
      HelpUsageConfig(CompiledSourceRoot(), absl::StrCat(program, " ", TPDIFF_VERSION)));
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, normalized.data());
  return std::vector<std::string>(positional.begin(), positional.end());
}

}  // namespace tpdiff::common
