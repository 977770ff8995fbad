#include "tpdiff/train/eval.h"

#include <png.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/model/network.h"
#include "tpdiff/train/synthetic_data.h"
#include "tpdiff/train/trainer.h"

namespace tpdiff::train {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Decodes a PNG with libpng's simplified API: [3, H, W] uint8, or undefined on failure.
torch::Tensor ReadPng(const fs::path& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) return {};
  image.format = PNG_FORMAT_RGB;
  torch::Tensor hwc = torch::empty({image.height, image.width, 3}, torch::kUInt8);
  if (!png_image_finish_read(&image, nullptr, hwc.data_ptr<uint8_t>(), 0, nullptr)) return {};
  return hwc.permute({2, 0, 1}).contiguous();
}

class EvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("tpdiff_eval_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A package written by the model developer's random-init helper, loaded on the CPU.
  absl::StatusOr<std::unique_ptr<model::LoadedModel>> LoadRandomPackage() {
    const fs::path package = dir_ / "package";
    absl::StatusOr<model::NetworkConfig> config = model::NetworkPreset("tiny");
    if (!config.ok()) return config.status();
    absl::Status s = model::CreateRandomBuiltinPackage(package.string(), "random", *config, 3);
    if (!s.ok()) return s;
    return model::LoadModelPackage(package.string(), torch::kCPU);
  }

  fs::path dir_;
};

TEST(EvalPromptsTest, ParsesPromptsSeedsAndComments) {
  auto prompts = ParsePromptList(
      "# eval set\n"
      "a red circle moving left\t1000000005\n"
      "\n"
      "a fast blue square moving up and a white triangle moving down\n",
      42);
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  ASSERT_EQ(prompts->size(), 2u);
  EXPECT_EQ((*prompts)[0].prompt, "a red circle moving left");
  EXPECT_EQ((*prompts)[0].seed, 1000000005u);
  EXPECT_EQ((*prompts)[1].seed, 43u);  // base + index
  EXPECT_EQ((*prompts)[1].scene.objects.size(), 2u);
}

TEST(EvalPromptsTest, ErrorsNameTheLine) {
  auto bad_caption = ParsePromptList("a red circle moving left\na red blob moving up\n", 0);
  ASSERT_FALSE(bad_caption.ok());
  EXPECT_TRUE(absl::StrContains(bad_caption.status().message(), "prompts line 2: caption"))
      << bad_caption.status();
  auto bad_seed = ParsePromptList("a red circle moving left\tminus one\n", 0);
  EXPECT_TRUE(absl::StrContains(bad_seed.status().message(), "prompts line 1: seed"))
      << bad_seed.status();
  EXPECT_FALSE(ParsePromptList("# nothing\n\n", 0).ok());
}

// The bundled prompt lists: valid, renderable, the promised object counts, and seeds kept
// apart from training's.
TEST(EvalPromptsTest, BundledPromptListsAreValid) {
  for (const auto& [file, objects, count] :
       {std::tuple<const char*, size_t, size_t>{"prompts-single.txt", 1, 48},
        std::tuple<const char*, size_t, size_t>{"prompts-two.txt", 2, 24},
        std::tuple<const char*, size_t, size_t>{"prompts-single-validation.txt", 1, 144},
        std::tuple<const char*, size_t, size_t>{"prompts-single-confirm.txt", 1, 96}}) {
    const fs::path path = fs::path(TPDIFF_SOURCE_DIR) / "models/eval" / file;
    auto prompts = ParsePromptList(ReadFile(path), 0);
    ASSERT_TRUE(prompts.ok()) << path << ": " << prompts.status();
    EXPECT_EQ(prompts->size(), count) << path;
    std::set<uint64_t> seeds;
    for (const EvalPrompt& p : *prompts) {
      EXPECT_EQ(p.scene.objects.size(), objects) << p.prompt;
      EXPECT_GE(p.seed, 1000000000u) << p.prompt;
      seeds.insert(p.seed);
      EXPECT_TRUE(train::RenderScene(p.scene, train::ClipSpec{}, p.seed).ok()) << p.prompt;
    }
    EXPECT_EQ(seeds.size(), prompts->size()) << path << ": repeated seeds";
  }
}

TEST_F(EvalTest, PngRoundTripsAndGridHasOneCellPerFrame) {
  const torch::Tensor image = torch::randint(0, 256, {3, 5, 7}, torch::kUInt8);
  fs::create_directories(dir_);
  ASSERT_TRUE(WritePng((dir_ / "x.png").string(), image).ok());
  EXPECT_TRUE(torch::equal(ReadPng(dir_ / "x.png"), image));
  EXPECT_FALSE(WritePng((dir_ / "y.png").string(), torch::zeros({3, 5, 7})).ok());
  EXPECT_FALSE(WritePng((dir_ / "no/such/dir/z.png").string(), image).ok());

  const torch::Tensor v = torch::randint(0, 256, {3, 4, 6, 5}, torch::kUInt8);
  auto grid = MakeGrid({v, v, v}, 3);
  ASSERT_TRUE(grid.ok());
  EXPECT_EQ(grid->sizes(), (std::vector<int64_t>{3, 3 * (18 + 2) + 2, 4 * (15 + 2) + 2}));
  // Row 1, frame 2, upscaled 3x with 2 px separators.
  const torch::Tensor cell = grid->narrow(1, 2 + 20, 18).narrow(2, 2 + 2 * 17, 15);
  EXPECT_TRUE(torch::equal(cell.index({torch::indexing::Slice(), torch::indexing::Slice(0, 18, 3),
                                       torch::indexing::Slice(0, 15, 3)}),
                           v.select(1, 2)));
  EXPECT_FALSE(MakeGrid({}, 3).ok());
  EXPECT_FALSE(MakeGrid({v, torch::zeros({3, 4, 6, 6}, torch::kUInt8)}, 3).ok());
}

// The writing and scoring path on ground-truth clips: every video adherent, files written.
TEST_F(EvalTest, GroundTruthClipsScorePerfectlyAndAreWritten) {
  auto prompts = ParsePromptList(
      "a red circle moving left\t1000000001\n"
      "a fast green square moving down-right on a gray background\t1000000002\n"
      "a slow blue triangle moving up and a fast yellow circle moving right\t1000000003\n",
      0);
  ASSERT_TRUE(prompts.ok());
  std::vector<EvalVideoResult> results;
  std::vector<torch::Tensor> videos;
  for (size_t i = 0; i < prompts->size(); ++i) {
    auto video = train::RenderScene((*prompts)[i].scene, train::ClipSpec{}, (*prompts)[i].seed);
    ASSERT_TRUE(video.ok());
    auto r = ScoreAndWriteVideo(*video, (*prompts)[i], static_cast<int>(i), 0.5, dir_.string());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->score.adherent) << (*prompts)[i].prompt;
    results.push_back(*r);
    videos.push_back(VideoToUint8(*video));
    // The frames on disk are the video.
    const torch::Tensor frame = ReadPng(dir_ / absl::StrFormat("%04d", i) / "07.png");
    ASSERT_TRUE(frame.defined());
    EXPECT_TRUE(torch::equal(frame, videos.back().select(1, 7)));
    EXPECT_TRUE(fs::exists(dir_ / absl::StrFormat("%04d", i) / "15.png"));
    EXPECT_FALSE(fs::exists(dir_ / absl::StrFormat("%04d", i) / "16.png"));
  }
  EvalRunInfo info;
  info.model = "ground-truth";
  info.sampler = "none";
  ASSERT_TRUE(WriteSummaryFiles(dir_.string(), info, videos, results, 2).ok());
  const torch::Tensor grid = ReadPng(dir_ / "grid.png");
  ASSERT_TRUE(grid.defined());
  EXPECT_EQ(grid.size(1), 3 * (64 + 2) + 2);
  EXPECT_EQ(grid.size(2), 16 * (64 + 2) + 2);

  const auto json = nlohmann::json::parse(ReadFile(dir_ / "results.json"));
  EXPECT_EQ(json["videos"].size(), 3u);
  EXPECT_EQ(json["videos"][2]["prompt"], (*prompts)[2].prompt);
  EXPECT_EQ(json["videos"][2]["seed"], 1000000003u);
  EXPECT_EQ(json["videos"][2]["objects"].size(), 2u);
  EXPECT_DOUBLE_EQ(json["totals"]["adherence"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(json["totals"]["attributes"]["direction"].get<double>(), 1.0);
  EXPECT_EQ(json["totals"]["single_object"]["videos"], 2);
  EXPECT_EQ(json["totals"]["two_object"]["videos"], 1);
  EXPECT_DOUBLE_EQ(json["totals"]["seconds_per_video"].get<double>(), 0.5);
}

TEST(EvalSummaryTest, TotalsSplitSingleAndTwoObjectVideos) {
  std::vector<EvalVideoResult> results(4);
  results[0].num_objects = 1;
  results[0].score.adherent = results[0].score.color_ok = true;
  results[1].num_objects = 1;
  results[1].score.color_ok = true;
  results[2].num_objects = 2;
  results[2].score.adherent = true;
  results[3].num_objects = 2;
  results[3].seconds = 4;
  results[0].score.objects.resize(1);
  results[0].score.objects[0].found = true;
  results[0].score.jerk = 0.2;
  results[1].score.jerk = 9;  // no object found: not part of the mean
  const EvalTotals t = Summarize(results);
  EXPECT_EQ(t.videos, 4);
  EXPECT_DOUBLE_EQ(t.adherence, 0.5);
  EXPECT_DOUBLE_EQ(t.color, 0.5);
  EXPECT_EQ(t.single_object_videos, 2);
  EXPECT_DOUBLE_EQ(t.single_object_adherence, 0.5);
  EXPECT_EQ(t.two_object_videos, 2);
  EXPECT_DOUBLE_EQ(t.two_object_adherence, 0.5);
  EXPECT_DOUBLE_EQ(t.seconds_per_video, 1.0);
  EXPECT_EQ(t.tracked_videos, 1);
  EXPECT_DOUBLE_EQ(t.jerk, 0.2);
}

// End to end with a random-init package (the trainer's tiny network preset keeps it quick):
// both samplers run and write everything; a random network is not expected to follow the captions.
TEST_F(EvalTest, RunsARandomPackageWithBothSamplers) {
  auto model = LoadRandomPackage();
  ASSERT_TRUE(model.ok()) << model.status();
  auto prompts = ParsePromptList(
      "a red circle moving left\t1000000001\n"
      "a blue square moving up and a white triangle moving down\t1000000002\n",
      0);
  ASSERT_TRUE(prompts.ok());

  for (const char* sampler : {"tpdiff", "vanilla"}) {
    EvalOptions options;
    options.sampler = sampler;
    options.stage_steps = {2, 1, 1};
    options.guidance_scale = 2.0;
    const fs::path out = dir_ / sampler;
    int calls = 0;
    auto report = RunEval(**model, *prompts, options, out.string(),
                          [&](int done, int total, const EvalVideoResult&) {
                            ++calls;
                            EXPECT_EQ(done, calls);
                            EXPECT_EQ(total, 2);
                          });
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(report->info.total_steps, 4);
    const std::vector<int> want_steps =
        std::string(sampler) == "tpdiff" ? std::vector<int>{2, 1, 1} : std::vector<int>{4};
    EXPECT_EQ(report->info.stage_steps, want_steps);
    for (const char* f : {"0000/00.png", "0000/15.png", "0001/15.png", "grid.png",
                          "results.json"}) {
      EXPECT_TRUE(fs::exists(out / f)) << sampler << " " << f;
    }
    const auto json = nlohmann::json::parse(ReadFile(out / "results.json"));
    EXPECT_EQ(json["run"]["sampler"], sampler);
    EXPECT_EQ(json["run"]["model"], "random");
    EXPECT_DOUBLE_EQ(json["run"]["guidance"].get<double>(), 2.0);
    EXPECT_EQ(json["videos"].size(), 2u);
    EXPECT_GT(json["videos"][0]["seconds"].get<double>(), 0);
    EXPECT_EQ(json["totals"]["two_object"]["videos"], 1);
    EXPECT_TRUE(json["totals"]["adherence"].is_number());
  }
  // Same seed, same video: the two runs of one sampler agree byte for byte.
  EvalOptions options;
  options.stage_steps = {2, 1, 1};
  options.guidance_scale = 2.0;
  ASSERT_TRUE(RunEval(**model, *prompts, options, (dir_ / "again").string()).ok());
  EXPECT_EQ(ReadFile(dir_ / "again/0001/09.png"), ReadFile(dir_ / "tpdiff/0001/09.png"));
}

// tpdiff-eval --solver: the run samples with it and results.json says which it was.
TEST_F(EvalTest, SolverIsUsedAndRecorded) {
  auto model = LoadRandomPackage();
  ASSERT_TRUE(model.ok()) << model.status();
  auto prompts = ParsePromptList("a red circle moving left\t1000000001\n", 0);
  ASSERT_TRUE(prompts.ok());
  std::string frames[2];
  for (int i = 0; i < 2; ++i) {
    EvalOptions options;
    options.stage_steps = {3, 1, 1};  // the noisiest stage has steps to extrapolate from
    if (i == 1) options.solver = core::FlowSolver::kEuler;
    const fs::path out = dir_ / (i == 0 ? "ab2" : "euler");
    ASSERT_TRUE(RunEval(**model, *prompts, options, out.string()).ok());
    const auto json = nlohmann::json::parse(ReadFile(out / "results.json"));
    EXPECT_EQ(json["run"]["solver"], i == 0 ? "ab2" : "euler");
    for (int f = 0; f < 16; ++f) frames[i] += ReadFile(out / absl::StrFormat("0000/%02d.png", f));
  }
  EXPECT_NE(frames[0], frames[1]);
}

// tpdiff-eval --sampler vanilla --stage-steps 30 on a 3-stage package: with the vanilla
// sampler one entry is the total number of full-rate steps, several entries their sum.
TEST_F(EvalTest, VanillaSamplerTakesATotalStepCount) {
  auto model = LoadRandomPackage();
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ((*model)->manifest().stages, 3);
  auto prompts = ParsePromptList("a red circle moving left\t1000000001\n", 0);
  ASSERT_TRUE(prompts.ok());
  EvalOptions options;
  options.sampler = "vanilla";
  options.stage_steps = {3};
  auto one = RunEval(**model, *prompts, options, (dir_ / "one").string());
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->info.stage_steps, std::vector<int>{3});
  EXPECT_EQ(one->info.total_steps, 3);
  options.stage_steps = {2, 1, 1};
  auto sum = RunEval(**model, *prompts, options, (dir_ / "sum").string());
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->info.stage_steps, std::vector<int>{4});
  // Entries are still checked before sampling.
  for (const std::vector<int>& bad : {std::vector<int>{0}, std::vector<int>{5, -1},
                                      std::vector<int>{600, 600}}) {
    options.stage_steps = bad;
    auto r = RunEval(**model, *prompts, options, (dir_ / "bad").string());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad.size();
    EXPECT_TRUE(absl::StrContains(r.status().message(), "stage-steps")) << r.status();
  }
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
  // The TPDiff sampler still wants one entry per stage.
  options.sampler = "tpdiff";
  options.stage_steps = {3};
  EXPECT_EQ(RunEval(**model, *prompts, options, (dir_ / "bad").string()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Two runners interleaved (as tpdiff-bench models runs them) give what RunEval gives alone.
TEST_F(EvalTest, InterleavedRunnersMatchRunEval) {
  auto model = LoadRandomPackage();
  ASSERT_TRUE(model.ok()) << model.status();
  auto prompts = ParsePromptList(
      "a red circle moving left\t1000000001\n"
      "a blue square moving up\t1000000002\n",
      0);
  ASSERT_TRUE(prompts.ok());
  EvalOptions tpdiff;
  tpdiff.stage_steps = {1, 1, 1};
  EvalOptions vanilla = tpdiff;
  vanilla.sampler = "vanilla";
  auto a = EvalRunner::Create(**model, *prompts, tpdiff, (dir_ / "a").string());
  auto b = EvalRunner::Create(**model, *prompts, vanilla, (dir_ / "b").string());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*b)->info().stage_steps, std::vector<int>{3});
  EXPECT_EQ((*a)->total(), 2);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE((*a)->Next().ok());
    ASSERT_TRUE((*b)->Next().ok());
  }
  EXPECT_EQ((*a)->done(), 2);
  EXPECT_EQ((*a)->Next().status().code(), absl::StatusCode::kFailedPrecondition);
  auto report = (*b)->Finish();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->totals.videos, 2);
  ASSERT_TRUE((*a)->Finish().ok());
  ASSERT_TRUE(RunEval(**model, *prompts, vanilla, (dir_ / "alone").string()).ok());
  EXPECT_EQ(ReadFile(dir_ / "alone/0001/09.png"), ReadFile(dir_ / "b/0001/09.png"));
  EXPECT_NE(ReadFile(dir_ / "a/0001/09.png"), ReadFile(dir_ / "b/0001/09.png"));
  EXPECT_TRUE(fs::exists(dir_ / "a/results.json"));
}

TEST_F(EvalTest, RejectsBadOptionsBeforeSampling) {
  auto model = LoadRandomPackage();
  ASSERT_TRUE(model.ok()) << model.status();
  auto prompts = ParsePromptList("a red circle moving left\n", 0);
  ASSERT_TRUE(prompts.ok());
  EvalOptions options;
  options.sampler = "fast";
  auto r = RunEval(**model, *prompts, options, (dir_ / "out").string());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "sampler: 'fast'")) << r.status();
  options = EvalOptions{};
  options.stage_steps = {10, 10};
  r = RunEval(**model, *prompts, options, (dir_ / "out").string());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "stage-steps")) << r.status();
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

}  // namespace
}  // namespace tpdiff::train
