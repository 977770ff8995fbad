// tpdiff-render-clips: writes synthetic captioned clips (the built-in model's training data)
// to a safetensors file for training code outside this project's C++ (train/clip_files.h).
// Flags and wiring only.

#include <cstdint>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "tpdiff/common/flags.h"
#include "tpdiff/train/clip_files.h"

ABSL_FLAG(int, count, 256, "number of clips");
ABSL_FLAG(uint64_t, seed, 0, "clip i depends only on (seed, i) and the size flags");
ABSL_FLAG(int, frames, 16, "frames per clip (a multiple of 4)");
ABSL_FLAG(int, height, 32, "pixels");
ABSL_FLAG(int, width, 32, "pixels");
ABSL_FLAG(std::string, out, "", "output file (required): tensor \"video\" [N,3,T,H,W] in "
                                "[-1,1], metadata \"captions\" (JSON list)");

int main(int argc, char** argv) {
  tpdiff::common::ParseCommandLine(argc, argv,
                                   "tpdiff-render-clips --count N --seed S --out FILE.safetensors");
  if (absl::GetFlag(FLAGS_out).empty()) {
    std::cerr << "tpdiff-render-clips: --out is required\n";
    return 2;
  }
  tpdiff::train::ClipSpec spec;
  spec.frames = absl::GetFlag(FLAGS_frames);
  spec.height = absl::GetFlag(FLAGS_height);
  spec.width = absl::GetFlag(FLAGS_width);
  const absl::Status status = tpdiff::train::RenderClipsToFile(
      spec, absl::GetFlag(FLAGS_count), absl::GetFlag(FLAGS_seed), absl::GetFlag(FLAGS_out));
  if (!status.ok()) {
    std::cerr << "tpdiff-render-clips: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
