#include "tpdiff/train/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../model/remove_tree.h"
#include "absl/strings/str_split.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/model/safetensors.h"

namespace tpdiff::train {
namespace {

namespace fs = std::filesystem;

TEST(LearningRateTest, WarmupThenCosine) {
  EXPECT_DOUBLE_EQ(LearningRateFactor(0, 10, 0.0, 0.1), 0.1);  // step 1 of 10
  EXPECT_DOUBLE_EQ(LearningRateFactor(9, 10, 0.0, 0.1), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateFactor(50, 10, 0.5, 0.1), 0.55);  // half way down the cosine
  EXPECT_DOUBLE_EQ(LearningRateFactor(99, 10, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateFactor(99, 10, 3.0, 0.1), 0.1);  // clamped past the budget
}

TEST(AdamWTest, MatchesHandComputedUpdate) {
  torch::Tensor w = torch::tensor({1.0f}).requires_grad_(true);
  AdamW adam({{"w", w, /*decay=*/true}}, 0.9, 0.99, 1e-8);
  w.mutable_grad() = torch::tensor({0.5f});
  adam.Step(0.1, 0.01);
  // Decoupled decay: 1 * (1 - 0.001) = 0.999; bias-corrected m/sqrt(v) = 0.5/0.5 = 1.
  EXPECT_NEAR(w.item<float>(), 0.999f - 0.1f, 1e-6);
  w.mutable_grad() = torch::tensor({-0.5f});
  adam.Step(0.1, 0.0);
  const double m = (0.9 * 0.05 + 0.1 * -0.5) / (1 - 0.81);
  const double v = (0.99 * 0.0025 + 0.01 * 0.25) / (1 - 0.9801);
  EXPECT_NEAR(w.item<float>(), 0.899 - 0.1 * m / std::sqrt(v), 1e-6);

  torch::Tensor w2 = torch::tensor({0.0f}).requires_grad_(true);
  AdamW other({{"w", w2, true}});
  std::map<std::string, torch::Tensor> state;
  for (auto& [name, t] : adam.State("adam.")) state[name] = t;
  ASSERT_TRUE(other.LoadState(state, "adam.", adam.steps()).ok());
  EXPECT_EQ(other.steps(), 2);
  EXPECT_FALSE(other.LoadState({}, "adam.", 2).ok());
}

TEST(ClipPrefetcherTest, DeliversTheBatchOfEachStepInOrder) {
  train::ClipSpec spec;
  spec.frames = 4;
  ClipPrefetcher from0(spec, 2, 9, 0, /*threads=*/3, /*capacity=*/2);
  ClipPrefetcher from2(spec, 2, 9, 2, 1, 1);
  std::vector<train::ClipBatch> seq;
  for (int i = 0; i < 4; ++i) seq.push_back(from0.Next());
  for (int i = 0; i < 4; ++i) {
    const train::ClipBatch want = train::RenderClipBatch(spec, 2, DataSeed(9, i));
    EXPECT_TRUE(torch::equal(seq[i].video, want.video)) << i;
    EXPECT_EQ(seq[i].captions, want.captions);
  }
  EXPECT_TRUE(torch::equal(from2.Next().video, seq[2].video));  // a resumed run sees the same data
}

class RunTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("tpdiff_train_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    tpdiff::testing::RemoveTree(root_.string());
  }
  void TearDown() override { tpdiff::testing::RemoveTree(root_.string()); }

  TrainOptions Tiny(const std::string& sub) {
    TrainOptions o;
    o.network = *model::NetworkPreset("tiny");
    o.clip.frames = 4;
    o.batch = 3;
    o.iters = 4;
    o.warmup = 2;
    o.threads = 1;
    o.seed = 11;
    o.out_dir = (root_ / sub).string();
    o.name = "tiny";
    return o;
  }

  static std::map<std::string, torch::Tensor> Weights(const TrainOptions& o) {
    auto st = model::ReadSafetensors((fs::path(o.out_dir) / "weights.safetensors").string());
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? st->tensors : std::map<std::string, torch::Tensor>{};
  }

  fs::path root_;
};

TEST_F(RunTrainingTest, WritesALoadablePackageLogAndCheckpoint) {
  TrainOptions o = Tiny("a");
  std::ostringstream progress;
  ASSERT_TRUE(RunTraining(o, &progress).ok());
  EXPECT_NE(progress.str().find("step 4/4"), std::string::npos) << progress.str();
  auto model = model::LoadModelPackage(o.out_dir, torch::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->manifest().stages, 3);
  EXPECT_EQ((*model)->manifest().frames, 4);
  EXPECT_TRUE(fs::exists(fs::path(o.out_dir) / "checkpoint" / "state.safetensors"));
  EXPECT_TRUE(fs::exists(fs::path(o.out_dir) / "checkpoint" / "state.json"));
  std::ifstream log(fs::path(o.out_dir) / "train_log.csv");
  std::string line;
  int rows = 0;
  std::getline(log, line);
  EXPECT_EQ(line, "step,loss,seconds,stage,lr,clips");
  while (std::getline(log, line)) ++rows;
  EXPECT_EQ(rows, 4);
  // Training moved the (EMA) weights away from the zero-initialised output layer.
  EXPECT_GT(Weights(o).at("final_proj.weight").abs().max().item<float>(), 0.0f);
}

TEST_F(RunTrainingTest, PausedAndResumedRunEqualsAStraightRun) {
  TrainOptions straight = Tiny("straight");
  ASSERT_TRUE(RunTraining(straight, nullptr).ok());
  TrainOptions paused = Tiny("paused");
  paused.stop_at_step = 2;
  ASSERT_TRUE(RunTraining(paused, nullptr).ok());
  paused.stop_at_step = 0;
  paused.resume = true;
  std::ostringstream progress;
  ASSERT_TRUE(RunTraining(paused, &progress).ok());
  EXPECT_NE(progress.str().find("resumed from"), std::string::npos);
  const auto a = Weights(straight);
  const auto b = Weights(paused);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
}

TEST_F(RunTrainingTest, VanillaModeWritesASingleStagePackage) {
  TrainOptions o = Tiny("vanilla");
  o.mode = TrainMode::kVanilla;
  o.iters = 2;
  o.align_noise = false;
  ASSERT_TRUE(RunTraining(o, nullptr).ok());
  auto model = model::LoadModelPackage(o.out_dir, torch::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->manifest().stages, 1);
  EXPECT_EQ((*model)->manifest().default_stage_steps, (std::vector<int>{30}));
}

TEST_F(RunTrainingTest, WarmStartKeepsTrainedWeightsAndZeroInitialisesNewParts) {
  TrainOptions base = Tiny("base");
  ASSERT_TRUE(RunTraining(base, nullptr).ok());
  TrainOptions warm = Tiny("warm");
  warm.network.word_conditioning = 1;  // a part the base package does not have
  warm.init_from = base.out_dir;
  warm.iters = 1;
  warm.lr = 1e-6;
  warm.warmup = 0;
  std::ostringstream progress;
  ASSERT_TRUE(RunTraining(warm, &progress).ok()) << progress.str();
  EXPECT_NE(progress.str().find("kept initial values for: word_cond.weight"), std::string::npos)
      << progress.str();
  const auto a = Weights(base);
  const auto b = Weights(warm);
  // One step at lr 1e-6 moves a weight by at most ~1e-6: the rest is the base package.
  for (const auto& [name, t] : a) {
    EXPECT_LT((t - b.at(name)).abs().max().item<float>(), 1e-4f) << name;
  }
  EXPECT_LT(b.at("word_cond.weight").abs().max().item<float>(), 1e-4f);

  TrainOptions bad = Tiny("bad-init");
  bad.init_from = (root_ / "no-such-package").string();
  EXPECT_EQ(RunTraining(bad, nullptr).message().rfind("--init-from: ", 0), 0u);
}

TEST_F(RunTrainingTest, StageWeightsDecideWhichStagesTrain) {
  TrainOptions o = Tiny("weighted");
  o.stage_weights = {0, 0, 1};  // only the noisiest, lowest-frame-rate stage
  o.iters = 6;
  std::ostringstream progress;
  ASSERT_TRUE(RunTraining(o, &progress).ok()) << progress.str();
  EXPECT_NE(progress.str().find("weighted 0:0:1"), std::string::npos) << progress.str();
  std::ifstream log(fs::path(o.out_dir) / "train_log.csv");
  std::string line;
  std::getline(log, line);
  int rows = 0;
  while (std::getline(log, line)) {
    ++rows;
    const std::vector<std::string> cells = absl::StrSplit(line, ',');
    ASSERT_GE(cells.size(), 4u) << line;
    EXPECT_EQ(cells[3], "3") << line;  // the stage column
  }
  EXPECT_EQ(rows, 6);
}

TEST_F(RunTrainingTest, BadOptionsNameTheFlag) {
  TrainOptions o = Tiny("bad");
  o.iters = 0;
  EXPECT_EQ(RunTraining(o, nullptr).message().rfind("--iters: ", 0), 0u);
  o = Tiny("bad");
  o.stages = 6;
  EXPECT_EQ(RunTraining(o, nullptr).message().rfind("--stages: ", 0), 0u);
  for (const std::vector<double>& weights :
       {std::vector<double>{1, 2}, std::vector<double>{1, -1, 1}, std::vector<double>{0, 0, 0}}) {
    o = Tiny("bad");
    o.stage_weights = weights;
    EXPECT_EQ(RunTraining(o, nullptr).message().rfind("--stage-weights: ", 0), 0u)
        << RunTraining(o, nullptr).message();
  }
  o = Tiny("bad");
  o.mode = TrainMode::kVanilla;
  o.stage_weights = {1, 1, 1};
  EXPECT_EQ(RunTraining(o, nullptr).message().rfind("--stage-weights: ", 0), 0u);
  o = Tiny("bad");
  o.device = "tpu";
  EXPECT_EQ(RunTraining(o, nullptr).code(), absl::StatusCode::kInvalidArgument);
  o = Tiny("bad");
  o.resume = true;
  ASSERT_TRUE(RunTraining(o, nullptr).ok());  // nothing to resume from: starts fresh
  o.network.width = 64;
  EXPECT_EQ(RunTraining(o, nullptr).message().rfind("--resume: ", 0), 0u);
}

}  // namespace
}  // namespace tpdiff::train
