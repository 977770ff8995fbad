#include "tpdiff/server/model_registry.h"

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
  "name": "tiny", "kind": "builtin", "parameterization": "flow_matching",
  "frames": 16, "height": 32, "width": 32, "channels": 3, "fps": 8, "stages": 3,
  "boundaries": [0.66, 0.33], "default_stage_steps": [6, 5, 4],
  "default_guidance_scale": 4.5, "weights_file": "weights.safetensors",
  "vocabulary_file": "vocab.txt"
})";

TEST_F(ModelsDirTest, ReadsManifestAndVocabulary) {
  Write("tiny/model.json", kManifest);
  Write("tiny/vocab.txt", "a\nRed\n\nball\n");
  fs::create_directories(dir_ / "not-a-package");
  absl::StatusOr<std::vector<tpdiff::v1::ModelInfo>> models = ReadModelsDir(dir_.string());
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 1u);
  const tpdiff::v1::ModelInfo& info = (*models)[0];
  EXPECT_EQ(info.name(), "tiny");
  EXPECT_EQ(info.frames(), 16u);
  EXPECT_EQ(info.fps(), 8u);
  EXPECT_THAT(info.default_stage_steps(), ElementsAre(6, 5, 4));
  EXPECT_FLOAT_EQ(info.default_guidance_scale(), 4.5f);
  EXPECT_THAT(info.vocabulary(), ElementsAre("a", "red", "ball"));
}

TEST_F(ModelsDirTest, ErrorsNameFileAndField) {
  Write("tiny/model.json", R"({"name": "tiny", "kind": "builtin", "parameterization": "vp_eps",
    "frames": 0, "height": 32, "width": 32, "channels": 3, "fps": 8,
    "default_stage_steps": [1]})");
  absl::StatusOr<std::vector<tpdiff::v1::ModelInfo>> models = ReadModelsDir(dir_.string());
  ASSERT_FALSE(models.ok());
  EXPECT_THAT(models.status().message(), HasSubstr("model.json: frames: must be a positive integer"));
  EXPECT_EQ(ReadModelsDir((dir_ / "missing").string()).status().code(), absl::StatusCode::kNotFound);
  Write("tiny/model.json", "{not json");
  EXPECT_THAT(ReadModelsDir(dir_.string()).status().message(), HasSubstr("not a JSON object"));
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
    absl::StatusOr<tpdiff::v1::ModelInfo> info = ReadModelPackageInfo((dir_ / "tiny").string());
    ASSERT_FALSE(info.ok()) << c.to;
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << c.to;
    EXPECT_THAT(info.status().message(), HasSubstr(": " + c.field + ": ")) << c.to;
  }
}

// The worker's reader (model::ParseManifest) defaults channels and fps; the front must accept
// the same manifests or it refuses to start with a package its workers serve.
TEST_F(ModelsDirTest, OptionalFieldsTakeTheWorkersDefaults) {
  std::string text = kManifest;
  for (const std::string field : {"\"channels\": 3, ", "\"fps\": 8, "}) {
    text.erase(text.find(field), field.size());
  }
  Write("tiny/model.json", text);
  Write("tiny/vocab.txt", "a\n");
  absl::StatusOr<tpdiff::v1::ModelInfo> info = ReadModelPackageInfo((dir_ / "tiny").string());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->channels(), 3u);
  EXPECT_EQ(info->fps(), 8u);
}

TEST(ModelRegistryTest, DiskWinsOverWorkersAndDefaultIsFirstByName) {
  ModelRegistry registry;
  EXPECT_EQ(registry.DefaultModel(), "");
  tpdiff::v1::ModelInfo from_worker = testing::TinyModel("tiny");
  from_worker.set_frames(99);
  registry.AddFromWorker(from_worker);
  EXPECT_EQ(registry.Find("tiny")->frames(), 99u);
  registry.AddFromDisk(testing::TinyModel("tiny"));
  registry.AddFromWorker(from_worker);
  EXPECT_EQ(registry.Find("tiny")->frames(), 16u);
  registry.AddFromWorker(testing::TinyModel("alpha"));
  EXPECT_EQ(registry.DefaultModel(), "alpha");
  EXPECT_EQ(registry.List().size(), 2u);
  EXPECT_EQ(registry.Find("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ModelRegistry("tiny").DefaultModel(), "tiny");
}

}  // namespace
}  // namespace tpdiff::server
