// tpdiff-make-package: writes an untrained model package (random builtin network of a preset,
// or a near-zero-cost TorchScript "null" network) so the service can be run, tested and
// benchmarked before a trained model exists.
//   tpdiff-make-package --network=tiny --name=tiny --out=/tmp/models/tiny --stage_steps=2,2,2
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "packages.h"
#include "tpdiff/common/flags.h"

ABSL_FLAG(std::string, out, "", "package folder to write (created)");
ABSL_FLAG(std::string, name, "", "manifest name; empty = the folder's name");
ABSL_FLAG(std::string, network, "tiny", "tiny, cpu or gpu (random builtin preset) or null");
ABSL_FLAG(uint64_t, seed, 7, "seed of the random weights");
ABSL_FLAG(std::string, stage_steps, "", "default steps per stage, e.g. 2,2,2; empty = 10,10,10");
ABSL_FLAG(int, frames, 0, "default and maximum frames; 0 = 16");
ABSL_FLAG(int, width, 0, "builtin: token width instead of the preset's (a multiple of its heads)");
ABSL_FLAG(int, depth, 0, "builtin: number of blocks instead of the preset's");

int main(int argc, char** argv) {
  tpdiff::common::ParseCommandLine(
      argc, argv,
      "tpdiff-make-package --out=DIR [--name --network=tiny|cpu|gpu|null --seed --stage_steps "
      "--frames --width --depth]");
  tpdiff::bench::PackageSpec spec;
  spec.dir = absl::GetFlag(FLAGS_out);
  while (spec.dir.size() > 1 && spec.dir.back() == '/') spec.dir.pop_back();
  spec.name = absl::GetFlag(FLAGS_name);
  if (spec.name.empty()) spec.name = spec.dir.substr(spec.dir.find_last_of('/') + 1);
  spec.network = absl::GetFlag(FLAGS_network);
  spec.seed = absl::GetFlag(FLAGS_seed);
  spec.frames = absl::GetFlag(FLAGS_frames);
  spec.width = absl::GetFlag(FLAGS_width);
  spec.depth = absl::GetFlag(FLAGS_depth);
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_stage_steps), ',',
                                            absl::SkipWhitespace())) {
    int steps = 0;
    if (!absl::SimpleAtoi(s, &steps)) {
      std::cerr << "tpdiff-make-package: --stage_steps: \"" << s << "\" is not a number\n";
      return 2;
    }
    spec.stage_steps.push_back(steps);
  }
  if (absl::Status s = tpdiff::bench::WritePackage(spec); !s.ok()) {
    std::cerr << "tpdiff-make-package: " << s << "\n";
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
