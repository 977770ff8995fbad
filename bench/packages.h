#ifndef TPDIFF_BENCH_PACKAGES_H_
#define TPDIFF_BENCH_PACKAGES_H_

// Model packages made on the spot, for benchmarks and for the end-to-end and deployment tests
// until the bundled model exists: a randomly initialised builtin network of a given preset, or
// a TorchScript "null" network whose forward costs next to nothing (so what a measurement
// sees is the service around the network).

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tpdiff::bench {

struct PackageSpec {
  std::string dir;   // the package folder (models/<name>); created, files replaced
  std::string name;  // manifest name
  // "tiny", "cpu" or "gpu": a random builtin network of that preset (model::NetworkPreset);
  // "null": TorchScript forward returning zeros, which costs one allocation per step.
  std::string network = "tiny";
  uint64_t seed = 7;
  std::vector<int> stage_steps;  // default steps per stage; empty = the manifest default
  int frames = 0;                // default and maximum frames; 0 = the manifest default (16)
  // Builtin only: the preset's token width and block count replaced (0 = the preset's), for
  // packages of a chosen size (memory measurements want >= 100 MB of weights).
  int width = 0;
  int depth = 0;
};

// Writes the package described by `spec`. INVALID_ARGUMENT names the bad field.
absl::Status WritePackage(const PackageSpec& spec);

}  // namespace tpdiff::bench

#endif  // TPDIFF_BENCH_PACKAGES_H_
