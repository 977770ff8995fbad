#ifndef TPDIFF_TESTS_UNIT_WORKER_TINY_PACKAGE_H_
#define TPDIFF_TESTS_UNIT_WORKER_TINY_PACKAGE_H_

// A randomly initialised, deliberately small builtin package (16 frames of 32x32 at 8 fps,
// 3 stages) written to a fresh temporary folder, so worker tests run real sampling quickly.

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/model/network.h"

namespace tpdiff::worker::testing {

// Creates <fresh temp dir>/<name>/ and returns the temp dir (the models dir).
inline absl::StatusOr<std::string> WriteTinyPackage(const std::string& name,
                                                    uint64_t seed = 7) {
  namespace fs = std::filesystem;
  std::string tmpl = (fs::temp_directory_path() / "tpdiff-worker-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  absl::StatusOr<model::NetworkConfig> config = model::NetworkPreset("tiny");
  if (!config.ok()) return config.status();
  absl::Status s =
      model::CreateRandomBuiltinPackage((fs::path(tmpl) / name).string(), name, *config, seed);
  if (!s.ok()) return s;
  return tmpl;
}

}  // namespace tpdiff::worker::testing

#endif  // TPDIFF_TESTS_UNIT_WORKER_TINY_PACKAGE_H_
