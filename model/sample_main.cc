// tpdiff-sample: samples a latent model package in process and writes its latents (and
// decoded frames) as safetensors. Only flags and wiring live here (tpdiff::model).
//   tpdiff-sample --package=DIR --prompt="..." --seed=1 --guidance=5 --steps=4,4,4
//     --out-latents=out.safetensors [--out-frames=DIR]

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "tpdiff/common/flags.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/model/sample_command.h"

ABSL_FLAG(std::string, package, "", "Latent model package folder");
ABSL_FLAG(std::string, prompt, "", "Caption");
ABSL_FLAG(std::string, negative_prompt, "", "Caption to steer away from; empty = unconditional");
ABSL_FLAG(uint64_t, seed, 1, "Seed of every noise draw");
ABSL_FLAG(double, guidance, 0, "Guidance scale; 0 = the manifest's default");
ABSL_FLAG(std::string, steps, "", "Steps per stage, noisiest first; empty = the manifest's");
ABSL_FLAG(int, stages, 0, "0 = one per --steps value; 1 = vanilla (one stage, total steps)");
ABSL_FLAG(int, frames, 0, "Pixel frames; 0 = the manifest's default");
ABSL_FLAG(int, height, 0, "Pixel height; 0 = the manifest's default");
ABSL_FLAG(int, width, 0, "Pixel width; 0 = the manifest's default");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda, cuda:N or auto");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads; 0 = number of cores");
ABSL_FLAG(std::string, out_latents, "", "safetensors file for the final and per-stage latents");
ABSL_FLAG(std::string, out_frames, "", "Folder for frames.safetensors (the decoded video)");

int main(int argc, char** argv) {
  tpdiff::model::ReexecWithPassiveOpenMpWait(argv);
  tpdiff::common::ParseCommandLine(
      argc, argv,
      "tpdiff-sample --package=DIR --prompt=... --out-latents=FILE [--negative-prompt --seed "
      "--guidance --steps=a,b,c --stages --frames --height --width --device --out-frames=DIR]");
  tpdiff::model::ConfigureCpuThreads(absl::GetFlag(FLAGS_threads));
  tpdiff::model::SampleCommandOptions o;
  o.package = absl::GetFlag(FLAGS_package);
  o.prompt = absl::GetFlag(FLAGS_prompt);
  o.negative_prompt = absl::GetFlag(FLAGS_negative_prompt);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.guidance = absl::GetFlag(FLAGS_guidance);
  o.steps = absl::GetFlag(FLAGS_steps);
  o.stages = absl::GetFlag(FLAGS_stages);
  o.frames = absl::GetFlag(FLAGS_frames);
  o.height = absl::GetFlag(FLAGS_height);
  o.width = absl::GetFlag(FLAGS_width);
  o.device = absl::GetFlag(FLAGS_device);
  o.out_latents = absl::GetFlag(FLAGS_out_latents);
  o.out_frames = absl::GetFlag(FLAGS_out_frames);
  if (absl::Status s = tpdiff::model::RunSampleCommand(o, std::cout); !s.ok()) {
    std::cerr << "tpdiff-sample: " << s << "\n";
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
