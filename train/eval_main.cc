// tpdiff-eval: samples a prompt list from a model package and scores caption adherence.
// Flags and wiring only; the work is in tpdiff/train/eval_command.h and eval.h.

#include <iostream>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "tpdiff/common/flags.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/train/eval_command.h"

ABSL_FLAG(std::string, model, "", "model package folder (required unless --videos)");
ABSL_FLAG(std::string, videos, "",
          "score these videos instead of sampling --model: safetensors with \"video\" "
          "[N,3,T,H,W] in [-1,1], one per prompt line in order");
ABSL_FLAG(std::string, prompts, "",
          "prompt list (required): one caption per line, optionally caption<TAB>seed");
ABSL_FLAG(std::string, out, "",
          "output folder (required): <0000>/<00>.png per video, grid.png, results.json");
ABSL_FLAG(std::string, sampler, "tpdiff", "tpdiff or vanilla");
ABSL_FLAG(std::string, stage_steps, "",
          "tpdiff: steps per stage of the package, noisiest first (e.g. 10,10,10); vanilla: the "
          "total number of full-rate steps, or entries summed; empty = the package's default");
ABSL_FLAG(std::optional<double>, guidance, std::nullopt,
          "guidance scale; unset = the package's default");
ABSL_FLAG(std::string, solver, "",
          "flow-matching solver: ab2 (default: one network call per step, second order), "
          "euler or heun (two calls per step)");
ABSL_FLAG(uint64_t, seed, 1000000000, "seed of prompt lines without one: --seed + line index");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads; 0 = number of cores");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda, cuda:N or auto");
ABSL_FLAG(int, grid_scale, 4, "integer upscale of grid.png");

int main(int argc, char** argv) {
  // Spinning OpenMP waits made sampling 2x slower here even on an idle 2-core machine.
  tpdiff::model::ReexecWithPassiveOpenMpWait(argv);
  tpdiff::common::ParseCommandLine(argc, argv,
                                   "tpdiff-eval --model DIR --prompts FILE --out DIR [flags]");
  tpdiff::train::EvalCommand command;
  command.model_dir = absl::GetFlag(FLAGS_model);
  command.videos_file = absl::GetFlag(FLAGS_videos);
  command.prompts_file = absl::GetFlag(FLAGS_prompts);
  command.out_dir = absl::GetFlag(FLAGS_out);
  command.sampler = absl::GetFlag(FLAGS_sampler);
  command.stage_steps = absl::GetFlag(FLAGS_stage_steps);
  command.guidance = absl::GetFlag(FLAGS_guidance);
  command.solver = absl::GetFlag(FLAGS_solver);
  command.seed = absl::GetFlag(FLAGS_seed);
  command.threads = absl::GetFlag(FLAGS_threads);
  command.device = absl::GetFlag(FLAGS_device);
  command.grid_scale = absl::GetFlag(FLAGS_grid_scale);
  const absl::Status status = tpdiff::train::RunEvalCommand(command, std::cout, std::cerr);
  if (!status.ok()) {
    std::cerr << "tpdiff-eval: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
