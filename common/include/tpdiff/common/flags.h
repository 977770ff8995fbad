#ifndef TPDIFF_COMMON_FLAGS_H_
#define TPDIFF_COMMON_FLAGS_H_

#include <string>
#include <vector>

#include "absl/flags/usage_config.h"
#include "absl/strings/string_view.h"

namespace tpdiff::common {

// Accepts --flag-name as well as absl's --flag_name (docs, probes and manifests spell flags
// with dashes): returns argv with '-' turned into '_' in every flag name (the part before
// '='), backed by `storage`, null-terminated. Arguments after a bare "--" stay as they are.
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage);

// `path` relative to `source_root` (a folder ending in '/') when it lies below it, else
// `path` without a leading "./". Help output names the defining file this way, so a binary
// never shows the folder it was built in.
std::string SourceRelativePath(absl::string_view path, absl::string_view source_root);

// The usage configuration every binary uses: --help and --helpshort list the flags defined in
// this project's sources (not Abseil's own), file names relative to `source_root`, and
// --version prints `version`.
absl::FlagsUsageConfig HelpUsageConfig(std::string source_root, std::string version);

// The folder this project was compiled from, as the compiler named it ("" when unknown).
std::string CompiledSourceRoot();

// The one command-line set-up of every binary: NormalizeFlagNames, HelpUsageConfig with
// CompiledSourceRoot(), the usage message, then absl::ParseCommandLine (which exits for
// --help, --version and bad flags). Returns the positional arguments, program name first.
// Call once, first thing in main.
std::vector<std::string> ParseCommandLine(int argc, char** argv, absl::string_view usage);

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_FLAGS_H_
