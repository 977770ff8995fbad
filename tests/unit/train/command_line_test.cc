// The parsing behind tpdiff-train's and tpdiff-eval's flags (train_flags.h, eval_command.h).

#include <gtest/gtest.h>

#include <sstream>

#include "tpdiff/train/eval_command.h"
#include "tpdiff/train/train_flags.h"

namespace tpdiff::train {
namespace {

TEST(TrainFlagsTest, ModeIsTpdiffOrVanilla) {
  EXPECT_EQ(*ParseTrainMode("tpdiff"), TrainMode::kTpdiff);
  EXPECT_EQ(*ParseTrainMode("vanilla"), TrainMode::kVanilla);
  EXPECT_EQ(ParseTrainMode("pyramid").status().message(),
            "--mode: \"pyramid\" is not tpdiff or vanilla");
}

TEST(TrainFlagsTest, StageWeightsAreCommaSeparatedNumbers) {
  EXPECT_EQ(*ParseStageWeights("1,1,3"), (std::vector<double>{1, 1, 3}));
  EXPECT_TRUE(ParseStageWeights("")->empty());
  absl::StatusOr<std::vector<double>> bad = ParseStageWeights("1,x");
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "--stage-weights: \"x\" is not a number (example: 1,1,3)");
}

TEST(TrainFlagsTest, OverridesReplaceOnlyTheFieldsGiven) {
  const model::NetworkConfig preset = *model::NetworkPreset("tiny");
  NetworkFlags flags;
  flags.preset = "tiny";
  model::NetworkConfig same = *NetworkFromFlags(flags);
  EXPECT_EQ(same.width, preset.width);
  EXPECT_EQ(same.text_layers, preset.text_layers);
  flags.width = preset.width * 2;
  flags.text_layers = preset.text_layers + 1;  // -1 keeps the preset's
  model::NetworkConfig changed = *NetworkFromFlags(flags);
  EXPECT_EQ(changed.width, preset.width * 2);
  EXPECT_EQ(changed.text_layers, preset.text_layers + 1);
  EXPECT_EQ(changed.depth, preset.depth);
  flags.preset = "huge";
  EXPECT_EQ(NetworkFromFlags(flags).status().code(), absl::StatusCode::kInvalidArgument);
}

// Settings are checked before the package is loaded, so no model is needed here.
TEST(EvalCommandTest, BadSettingsNameTheirFlag) {
  std::ostringstream out, progress;
  EvalCommand command;
  EXPECT_EQ(RunEvalCommand(command, out, progress).message(), "--model is required");
  command.model_dir = "/nonexistent/model";
  command.prompts_file = "/nonexistent/prompts.txt";
  command.out_dir = "/nonexistent/out";
  command.stage_steps = "10,x";
  EXPECT_EQ(RunEvalCommand(command, out, progress).message(),
            "--stage-steps: 'x' is not an integer");
  command.stage_steps = "10,10,10";
  command.solver = "rk4";
  absl::Status solver = RunEvalCommand(command, out, progress);
  EXPECT_EQ(solver.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(solver.message().rfind("--", 0), 0u) << solver.message();
  command.solver = "";
  command.threads = -1;
  EXPECT_EQ(RunEvalCommand(command, out, progress).message(),
            "--threads: -1 is negative (0 = one per core)");
  command.threads = 1;
  EXPECT_EQ(RunEvalCommand(command, out, progress).message(),
            "--prompts: cannot read /nonexistent/prompts.txt");
  EXPECT_TRUE(out.str().empty());
}

}  // namespace
}  // namespace tpdiff::train
