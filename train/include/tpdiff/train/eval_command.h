#ifndef TPDIFF_TRAIN_EVAL_COMMAND_H_
#define TPDIFF_TRAIN_EVAL_COMMAND_H_

// tpdiff-eval after flag parsing: reads the prompt list, loads the package, runs RunEval with
// a progress bar and prints the summary. train/eval_main.cc only fills EvalCommand.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace tpdiff::train {

// tpdiff-eval's settings, one field per flag.
struct EvalCommand {
  std::string model_dir;     // the model package
  // Score these videos (clip_files.h videos file, one per prompt) instead of sampling
  // model_dir; model_dir and sampler then only label results.json.
  std::string videos_file;
  std::string prompts_file;  // one caption per line, optionally caption<TAB>seed
  std::string out_dir;
  std::string sampler = "tpdiff";
  std::string stage_steps;         // "10,10,10"; empty = the package's default
  std::optional<double> guidance;  // empty = the package's default
  std::string solver;              // empty = the default flow solver
  uint64_t seed = 1000000000;      // of a prompt line without one: seed + its index
  int threads = 0;                 // LibTorch intra-op threads; 0 = one per core
  std::string device = "cpu";      // common::ParseDeviceSpec
  int grid_scale = 4;
};

// Runs the evaluation: the progress bar goes to `progress`, the summary line and the files
// written to `out`. INVALID_ARGUMENT naming the flag for bad settings; the loader's and
// RunEval's errors otherwise.
absl::Status RunEvalCommand(const EvalCommand& command, std::ostream& out, std::ostream& progress);

}  // namespace tpdiff::train

#endif  // TPDIFF_TRAIN_EVAL_COMMAND_H_
