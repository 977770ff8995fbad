#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tpdiff/model/model_package.h"
#include "tpdiff/model/network.h"

namespace tpdiff::model {
namespace {

nlohmann::json ValidJson() {
  ModelManifest m = DefaultBuiltinManifest("shapes-32");
  m.network_config_json = NetworkConfig().ToJson();
  return nlohmann::json::parse(ManifestToJson(m));
}

TEST(ManifestTest, RoundTrips) {
  ModelManifest m = DefaultBuiltinManifest("shapes-32");
  m.network_config_json = NetworkConfig().ToJson();
  m.boundaries = {0.7, 0.3};
  m.fps = 12;
  auto parsed = ParseManifest(ManifestToJson(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->name, "shapes-32");
  EXPECT_EQ(parsed->kind, "builtin");
  EXPECT_EQ(parsed->parameterization, core::Parameterization::kFlowMatching);
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
      {"colour", [](auto& j) { j["colour"] = 1; }, "unknown field"},
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

}  // namespace
}  // namespace tpdiff::model
