#include "tpdiff/spec/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "tpdiff/spec/network_config.h"

namespace tpdiff::spec {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A builtin manifest like the bundled model's: 16 frames of 32x32, 3 stages of 10 steps.
ModelManifest ValidManifest() {
  ModelManifest m;
  m.name = "shapes-32";
  m.kind = "builtin";
  m.default_stage_steps = {10, 10, 10};
  m.default_guidance_scale = 3.0;
  m.weights_file = "weights.safetensors";
  m.vocabulary_file = "vocab.txt";
  m.network_config_json = NetworkConfig().ToJson();
  return m;
}

nlohmann::json ValidJson() { return nlohmann::json::parse(ManifestToJson(ValidManifest())); }

TEST(ManifestTest, RoundTrips) {
  ModelManifest m = ValidManifest();
  m.boundaries = {0.7, 0.3};
  m.fps = 12;
  m.description = "Coloured shapes moving on a plain background.";
  auto parsed = ParseManifest(ManifestToJson(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->name, "shapes-32");
  EXPECT_EQ(parsed->kind, "builtin");
  EXPECT_EQ(parsed->description, m.description);
  EXPECT_EQ(parsed->parameterization, Parameterization::kFlowMatching);
  EXPECT_EQ(parsed->frames, 16);
  EXPECT_EQ(parsed->fps, 12);
  EXPECT_EQ(parsed->boundaries, (std::vector<double>{0.7, 0.3}));
  EXPECT_EQ(parsed->default_stage_steps, (std::vector<int>{10, 10, 10}));
  EXPECT_DOUBLE_EQ(parsed->default_guidance_scale, 3.0);
  EXPECT_EQ(parsed->weights_file, "weights.safetensors");
  EXPECT_EQ(parsed->vocabulary_file, "vocab.txt");
  auto config = NetworkConfig::FromJson(parsed->network_config_json);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->width, NetworkConfig().width);
}

// Each mutation of a valid manifest must fail with INVALID_ARGUMENT naming `field`.
TEST(ManifestTest, ErrorsNameTheField) {
  struct Case {
    const char* field;
    std::function<void(nlohmann::json&)> mutate;
    const char* detail;
  } cases[] = {
      {"name", [](auto& j) { j.erase("name"); }, "missing"},
      {"name", [](auto& j) { j["name"] = "../evil"; }, "may only use"},
      {"kind", [](auto& j) { j["kind"] = "onnx"; }, "not \"builtin\""},
      {"parameterization", [](auto& j) { j["parameterization"] = "ddpm"; }, "flow_matching"},
      {"frames", [](auto& j) { j["frames"] = "16"; }, "must be an integer"},
      {"frames", [](auto& j) { j["frames"] = 18; }, "not divisible by 2^(stages-1) = 4"},
      {"height", [](auto& j) { j["height"] = 0; }, "outside"},
      {"stages", [](auto& j) { j["stages"] = 6; }, "outside [1, 5]"},
      {"default_stage_steps",
       [](auto& j) {
         j["default_stage_steps"] = {10, 10};
       },
       "one per stage (3)"},
      {"default_stage_steps",
       [](auto& j) {
         j["default_stage_steps"] = {10, 0, 10};
       },
       "outside"},
      {"boundaries", [](auto& j) { j["boundaries"] = {0.5}; }, "needs 2"},
      {"boundaries",
       [](auto& j) {
         j["boundaries"] = {0.3, 0.6};
       },
       ""},
      {"default_guidance_scale", [](auto& j) { j["default_guidance_scale"] = -1; }, "outside"},
      {"weights_file", [](auto& j) { j.erase("weights_file"); }, "missing"},
      {"weights_file", [](auto& j) { j["weights_file"] = "/etc/passwd"; }, "relative"},
      {"vocabulary_file", [](auto& j) { j["vocabulary_file"] = "../v.txt"; }, "\"..\""},
      {"network", [](auto& j) { j.erase("network"); }, "required for kind \"builtin\""},
      {"network.widht", [](auto& j) { j["network"]["widht"] = 3; }, "unknown field"},
      {"network.width", [](auto& j) { j["network"]["width"] = 130; }, "not divisible by heads"},
      {"colour", [](auto& j) { j["colour"] = 1; }, "unknown field; known fields: name, kind, "},
      {"descripton", [](auto& j) { j["descripton"] = "typo"; }, "unknown field"},
      {"description", [](auto& j) { j["description"] = 7; }, "must be a string"},
      {"description",
       [](auto& j) { j["description"] = std::string(1025, 'x'); },
       "1025 bytes exceeds the maximum of 1024"},
      {"fps", [](auto& j) { j["fps"] = 61; }, "61 outside [1, 60]"},
      {"default_stage_steps",
       [](auto& j) {
         j["default_stage_steps"] = {10, 101, 10};
       },
       "101 outside [1, 100]"},
      {"default_stage_steps",
       [](auto& j) {
         j["default_stage_steps"] = {10, 18446744073709551615ull, 10};
       },
       "outside [1, 100]"},
      {"frames", [](auto& j) { j["frames"] = 18446744073709551615ull; }, "outside [1, 1024]"},
      {"default_guidance_scale", [](auto& j) { j["default_guidance_scale"] = 25; }, "outside [0, 20]"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = ValidJson();
    c.mutate(j);
    auto m = ParseManifest(j.dump());
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    const std::string msg(m.status().message());
    EXPECT_EQ(msg.rfind(std::string(c.field) + ": ", 0), 0u)
        << "want field " << c.field << " in: " << msg;
    EXPECT_NE(msg.find(c.detail), std::string::npos) << "want \"" << c.detail << "\" in: " << msg;
  }
}

TEST(ManifestTest, RejectsNonJson) {
  EXPECT_EQ(ParseManifest("{").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseManifest("[]").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ManifestTest, TorchScriptNeedsNoNetworkButMayNotHaveOne) {
  nlohmann::json j = ValidJson();
  j["kind"] = "torchscript";
  EXPECT_EQ(ParseManifest(j.dump()).status().message().rfind("network: ", 0), 0u);
  j.erase("network");
  EXPECT_TRUE(ParseManifest(j.dump()).ok());
}

TEST(ManifestTest, DescriptionIsOptional) {
  nlohmann::json j = ValidJson();
  ASSERT_FALSE(j.contains("description"));
  EXPECT_EQ(ParseManifest(j.dump())->description, "");
  j["description"] = std::string(1024, 'x');
  EXPECT_TRUE(ParseManifest(j.dump()).ok());
}

class PackageSpecTest : public ::testing::Test {
 protected:
  PackageSpecTest() {
    dir_ = fs::temp_directory_path() /
           ("tpdiff_spec_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~PackageSpecTest() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  fs::path dir_;
};

TEST_F(PackageSpecTest, ReadsManifestAndVocabulary) {
  Write("model.json", ManifestToJson(ValidManifest()));
  Write("vocab.txt", "red\nblue\n");
  absl::StatusOr<ModelSpec> spec = ReadModelPackageSpec(dir_.string());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->manifest.name, "shapes-32");
  EXPECT_EQ(spec->tokenizer.words(), (std::vector<std::string>{"red", "blue"}));
}

TEST_F(PackageSpecTest, ErrorsNameTheFileAndField) {
  EXPECT_EQ(ReadModelPackageSpec((dir_ / "missing").string()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadModelPackageSpec(dir_.string()).status().code(), absl::StatusCode::kNotFound);

  Write("model.json", ManifestToJson(ValidManifest()));
  absl::Status s = ReadModelPackageSpec(dir_.string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir_.string() + ": vocabulary_file: "));

  Write("vocab.txt", "Red\n");
  s = ReadModelPackageSpec(dir_.string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("vocabulary_file: vocabulary: word 1 \"Red\""));

  // More words than the network's embedding table holds.
  std::string words;
  for (int i = 0; i < NetworkConfig().vocab_size; ++i) words += "w" + std::to_string(i) + "\n";
  Write("vocab.txt", words);
  s = ReadModelPackageSpec(dir_.string()).status();
  EXPECT_EQ(s.message(), dir_.string() + ": vocabulary_file: 26 words need vocab_size 27 but "
                                         "network.vocab_size is 26");

  Write("vocab.txt", "red\n");
  ModelManifest m = ValidManifest();
  m.height = 20;  // not a multiple of network.patch 8
  Write("model.json", ManifestToJson(m));
  s = ReadModelPackageSpec(dir_.string()).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr(": height: 20 must be a multiple of network.patch 8"));

  Write("model.json", "{\"name\": 1}");
  s = ReadModelPackageSpec(dir_.string()).status();
  EXPECT_EQ(s.message(), (dir_ / "model.json").string() + ": name: must be a string");
}

}  // namespace
}  // namespace tpdiff::spec
