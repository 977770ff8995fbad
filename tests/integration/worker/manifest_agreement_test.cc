// The front and the worker must accept and reject the same model packages with the same
// message: a package the front lists but no worker can load leaves jobs queued for a model
// whose workers crash-loop. Each manifest below goes through the front's loading
// (server::ReadModelsDir, as --models-dir does) and the worker's (model::LoadModelPackage,
// weights included).

#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tiny_package.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/server/model_registry.h"
#include "tpdiff/worker/models.h"

namespace tpdiff {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ManifestAgreementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = worker::testing::WriteTinyPackage("tiny");
    ASSERT_TRUE(dir.ok()) << dir.status();
    models_dir_ = *dir;
    std::ifstream in(Package() / "model.json");
    std::stringstream text;
    text << in.rdbuf();
    manifest_ = json::parse(text.str());
  }
  void TearDown() override { fs::remove_all(models_dir_); }
  fs::path Package() const { return fs::path(models_dir_) / "tiny"; }

  std::string models_dir_;
  json manifest_;  // the valid manifest the package was written with
};

TEST_F(ManifestAgreementTest, FrontAndWorkerAcceptAndRejectTheSameManifests) {
  struct Case {
    const char* name;
    std::function<void(json&)> mutate;
    const char* error;  // "" = accepted; otherwise the start of the message after the path
  };
  const Case cases[] = {
      {"valid", [](json&) {}, ""},
      {"description", [](json& j) { j["description"] = "Coloured shapes on gray."; }, ""},
      {"long description", [](json& j) { j["description"] = std::string(1025, 'x'); },
       "description: 1025 bytes exceeds the maximum of 1024"},
      {"unknown field", [](json& j) { j["colour"] = "red"; },
       "colour: unknown field; known fields: name, kind, description, parameterization, "},
      {"misspelt description", [](json& j) { j["descripton"] = "typo"; },
       "descripton: unknown field"},
      {"wrong type", [](json& j) { j["frames"] = "16"; }, "frames: must be an integer"},
      {"description not a string", [](json& j) { j["description"] = 3; },
       "description: must be a string"},
      {"fps over the API's limit", [](json& j) { j["fps"] = 61; }, "fps: 61 outside [1, 60]"},
      {"steps over the API's limit", [](json& j) { j["default_stage_steps"] = {10, 101, 10}; },
       "default_stage_steps: 101 outside [1, 100]"},
      {"guidance over the API's limit", [](json& j) { j["default_guidance_scale"] = 25; },
       "default_guidance_scale: 25 outside [0, 20]"},
      {"frames not divisible", [](json& j) { j["frames"] = 18; },
       "frames: 18 is not divisible by 2^(stages-1) = 4"},
      {"boundaries out of order", [](json& j) { j["boundaries"] = {0.3, 0.6}; },
       "boundaries: "},
      {"network typo", [](json& j) { j["network"]["widht"] = 3; }, "network.widht: unknown field"},
      {"size the network cannot patch", [](json& j) { j["height"] = 28; },
       "height: 28 must be a multiple of network.patch"},
      {"vocabulary outside the package", [](json& j) { j["vocabulary_file"] = "../vocab.txt"; },
       "vocabulary_file: \"../vocab.txt\" must not contain \"..\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    json j = manifest_;
    c.mutate(j);
    std::ofstream(Package() / "model.json", std::ios::trunc) << j.dump(2);

    absl::StatusOr<std::vector<spec::ModelSpec>> front = server::ReadModelsDir(models_dir_);
    absl::StatusOr<std::unique_ptr<model::LoadedModel>> worker =
        model::LoadModelPackage(Package().string(), torch::kCPU);
    ASSERT_EQ(front.ok(), worker.ok()) << "front: " << front.status() << "\nworker: " << worker.status();
    if (std::string(c.error).empty()) {
      ASSERT_TRUE(front.ok()) << front.status();
      ASSERT_EQ(front->size(), 1u);
      // ListModels reports what the worker announces in Hello.
      server::ModelRegistry registry;
      registry.AddFromDisk((*front)[0]);
      absl::StatusOr<tpdiff::v1::ModelInfo> listed = registry.Find("tiny");
      ASSERT_TRUE(listed.ok());
      const tpdiff::v1::ModelInfo hello = worker::ToModelInfo(**worker);
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*listed, hello))
          << listed->ShortDebugString() << "\n" << hello.ShortDebugString();
      EXPECT_EQ(hello.description(), j.value("description", ""));
      continue;
    }
    EXPECT_EQ(front.status(), worker.status());
    EXPECT_EQ(front.status().code(), absl::StatusCode::kInvalidArgument) << front.status();
    const std::string message(front.status().message());
    EXPECT_NE(message.find(": " + std::string(c.error)), std::string::npos)
        << "want \"" << c.error << "\" in: " << message;
  }
}

}  // namespace
}  // namespace tpdiff
