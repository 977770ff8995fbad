#ifndef TPDIFF_MODEL_SAMPLE_COMMAND_H_
#define TPDIFF_MODEL_SAMPLE_COMMAND_H_

// tpdiff-sample: samples a latent package in process, without the service, and writes the
// latents (and optionally the decoded frames) as safetensors, for comparing the C++ sampler
// with the Python reference on the same seed and for measuring a package's costs.

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace tpdiff::model {

struct SampleCommandOptions {
  std::string package;  // the package folder
  std::string prompt;
  std::string negative_prompt;
  uint64_t seed = 1;
  double guidance = 0;  // 0 = the manifest's default
  std::string steps;    // "a,b,c", noisiest stage first; empty = the manifest's default
  // 0: as many stages as `steps` has; 1: vanilla, one stage with the sum of the steps.
  int stages = 0;
  int frames = 0;  // pixels; 0 = the manifest's default
  int height = 0;
  int width = 0;
  std::string device = "cpu";  // cpu, cuda, cuda:N or auto
  // Tensors "latents" (the final latents [1, C, T', h, w]) and "stage<k>.latents" (stage
  // k's end latents, k = 1 full frame rate), float32: the names of the Python reference.
  std::string out_latents;
  // When set: DIR/frames.safetensors with "frames", the decoded video [1, 3, T, H, W] in
  // [-1, 1], float32.
  std::string out_frames;
};

// Runs the command; prints the seconds spent encoding the text, sampling and decoding to
// `out`. INVALID_ARGUMENT naming the flag for bad flags, the loader's and the sampler's
// errors otherwise.
absl::Status RunSampleCommand(const SampleCommandOptions& options, std::ostream& out);

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_SAMPLE_COMMAND_H_
