#include "tpdiff/server/model_registry.h"

#include "tpdiff/server/validation.h"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_model.h"

namespace tpdiff::server {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ModelsDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("models-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tiny");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const fs::path& path, const std::string& text) {
    std::ofstream(dir_ / path) << text;
  }
  fs::path dir_;
};

constexpr char kManifest[] = R"({
  "name": "tiny", "kind": "torchscript", "parameterization": "flow_matching",
  "frames": 16, "height": 32, "width": 32, "channels": 3, "fps": 8, "stages": 3,
  "boundaries": [0.66, 0.33], "default_stage_steps": [6, 5, 4],
  "default_guidance_scale": 4.5, "weights_file": "weights.safetensors",
  "vocabulary_file": "vocab.txt"
})";

TEST_F(ModelsDirTest, ReadsManifestAndVocabulary) {
  Write("tiny/model.json", kManifest);
  Write("tiny/vocab.txt", "a\nred\n\nball\n");
  fs::create_directories(dir_ / "not-a-package");
  absl::StatusOr<std::vector<spec::ModelSpec>> models = ReadModelsDir(dir_.string());
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 1u);
  ModelRegistry registry;
  registry.AddFromDisk((*models)[0]);
  absl::StatusOr<tpdiff::v1::ModelInfo> info = registry.Find("tiny");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "tiny");
  EXPECT_EQ(info->frames(), 16u);
  EXPECT_EQ(info->fps(), 8u);
  EXPECT_THAT(info->default_stage_steps(), ElementsAre(6, 5, 4));
  EXPECT_FLOAT_EQ(info->default_guidance_scale(), 4.5f);
  EXPECT_THAT(info->vocabulary(), ElementsAre("a", "red", "ball"));
}

TEST_F(ModelsDirTest, ErrorsNameFileAndField) {
  Write("tiny/model.json", R"({"name": "tiny", "kind": "builtin", "parameterization": "vp_eps",
    "frames": 0, "height": 32, "width": 32, "channels": 3, "fps": 8,
    "default_stage_steps": [1]})");
  absl::StatusOr<std::vector<spec::ModelSpec>> models = ReadModelsDir(dir_.string());
  ASSERT_FALSE(models.ok());
  EXPECT_THAT(models.status().message(), HasSubstr("model.json: frames: 0 outside [1, 1024]"));
  EXPECT_EQ(ReadModelsDir((dir_ / "missing").string()).status().code(), absl::StatusCode::kNotFound);
  Write("tiny/model.json", "{not json");
  EXPECT_THAT(ReadModelsDir(dir_.string()).status().message(),
              HasSubstr("model.json: model.json: not valid JSON"));
}

// Regressions found by tests/fuzz/manifest_fuzzer.cc (inputs in tests/fuzz/corpus/manifest/):
// each was a crash (an nlohmann::json exception, a float overflow) or a silently wrong value.
TEST_F(ModelsDirTest, HostileValuesAreErrorsNamingTheField) {
  Write("tiny/vocab.txt", "a\n");
  const std::string base = kManifest;
  struct Case {
    std::string from, to, field;
  };
  for (const Case& c : std::vector<Case>{
           {"4.5", "\"4.5\"", "default_guidance_scale"},  // threw json::type_error
           {"4.5", "1e300", "default_guidance_scale"},      // does not fit a float
           {"[6, 5, 4]", "[4294967296, 5, 4]", "default_stage_steps"},  // wrapped to 0
           {"\"frames\": 16", "\"frames\": 18446744073709551615", "frames"},
           {"\"vocab.txt\"", "\"/etc/hostname\"", "vocabulary_file"},  // outside the package
           {"\"vocab.txt\"", "\"../tiny/vocab.txt\"", "vocabulary_file"}}) {
    std::string text = base;
    const size_t at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    text.replace(at, c.from.size(), c.to);
    Write("tiny/model.json", text);
    absl::StatusOr<std::vector<spec::ModelSpec>> models = ReadModelsDir(dir_.string());
    ASSERT_FALSE(models.ok()) << c.to;
    EXPECT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument) << c.to;
    EXPECT_THAT(models.status().message(), HasSubstr(": " + c.field + ": ")) << c.to;
  }
}

// Optional fields take the manifest's defaults (the parser is the worker's).
TEST_F(ModelsDirTest, OptionalFieldsTakeTheWorkersDefaults) {
  std::string text = kManifest;
  for (const std::string field : {"\"channels\": 3, ", "\"fps\": 8, "}) {
    text.erase(text.find(field), field.size());
  }
  Write("tiny/model.json", text);
  Write("tiny/vocab.txt", "a\n");
  absl::StatusOr<std::vector<spec::ModelSpec>> models = ReadModelsDir(dir_.string());
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].manifest.channels, 3);
  EXPECT_EQ((*models)[0].manifest.fps, 8);
}

TEST(ModelRegistryTest, DiskWinsOverWorkersAndDefaultIsFirstByName) {
  ModelRegistry registry;
  EXPECT_EQ(registry.DefaultModel(), "");
  tpdiff::v1::ModelInfo from_worker = testing::TinyModel("tiny");
  from_worker.set_frames(96);
  ASSERT_TRUE(registry.AddFromWorker(from_worker).ok());
  EXPECT_EQ(registry.Find("tiny")->frames(), 96u);
  EXPECT_EQ((*registry.FindSpec("tiny"))->manifest.frames, 96);
  registry.AddFromDisk(testing::TinySpec("tiny"));
  ASSERT_TRUE(registry.AddFromWorker(from_worker).ok());
  EXPECT_EQ(registry.Find("tiny")->frames(), 16u);
  EXPECT_EQ((*registry.FindSpec("tiny"))->manifest.frames, 16);
  ASSERT_TRUE(registry.AddFromWorker(testing::TinyModel("alpha")).ok());
  EXPECT_EQ(registry.DefaultModel(), "alpha");
  EXPECT_EQ(registry.List().size(), 2u);
  EXPECT_THAT(registry.Names(), ElementsAre("alpha", "tiny"));
  EXPECT_EQ(registry.Find("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ModelRegistry("tiny").DefaultModel(), "tiny");
}

TEST(ModelRegistryTest, RejectsAnnouncementsWithoutVocabulary) {
  ModelRegistry registry;
  tpdiff::v1::ModelInfo info = testing::TinyModel("mute");
  info.clear_vocabulary();
  EXPECT_EQ(registry.AddFromWorker(info).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Find("mute").status().code(), absl::StatusCode::kNotFound);
}

// The front resolves the model's name; the checks themselves are spec::ValidateAndFill's
// (tests/unit/spec/request_test.cc).
TEST(ValidateAndFillTest, ResolvesTheModelByNameOrDefault) {
  ModelRegistry registry;
  absl::StatusOr<tpdiff::v1::GenerateRequest> out =
      ValidateAndFill(testing::ValidRequest(), registry, 42);
  EXPECT_EQ(out.status().message(), "model: unknown model \"\"; known models: none");
  registry.AddFromDisk(testing::TinySpec("tiny"));
  ASSERT_TRUE(registry.AddFromWorker(testing::TinyModel("other")).ok());
  out = ValidateAndFill(testing::ValidRequest(), registry, 42);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->model(), "other");  // the first by name
  EXPECT_EQ(out->seed(), 42u);
  tpdiff::v1::GenerateRequest request = testing::ValidRequest();
  request.set_model("huge");
  EXPECT_EQ(ValidateAndFill(request, registry, 42).status().message(),
            "model: unknown model \"huge\"; known models: other, tiny");
  request.set_model("tiny");
  request.set_prompt("a red ball, bouncing on grass.");
  EXPECT_TRUE(ValidateAndFill(request, registry, 42).ok());
  request.set_prompt("a purple ball");
  EXPECT_EQ(ValidateAndFill(request, registry, 42).status().message(),
            "prompt: words not in the vocabulary of model \"tiny\": purple");
}

}  // namespace
}  // namespace tpdiff::server
