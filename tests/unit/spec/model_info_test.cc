#include "tpdiff/spec/model_info.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tpdiff::spec {
namespace {

using ::testing::ElementsAre;

TEST(ModelInfoTest, ReportsManifestDescriptionAndVocabulary) {
  ModelManifest m;
  m.name = "shapes";
  m.kind = "torchscript";
  m.description = "Coloured shapes.";
  m.parameterization = Parameterization::kVpEps;
  m.frames = 8;
  m.height = 16;
  m.width = 24;
  m.channels = 1;
  m.fps = 12;
  m.stages = 2;
  m.default_stage_steps = {6, 3};
  m.default_guidance_scale = 2.5;
  const Tokenizer tokenizer = *Tokenizer::FromWords({"red", "circle"});
  const tpdiff::v1::ModelInfo info = ToModelInfo(m, tokenizer);
  EXPECT_EQ(info.name(), "shapes");
  EXPECT_EQ(info.kind(), "torchscript");
  EXPECT_EQ(info.description(), "Coloured shapes.");
  EXPECT_EQ(info.parameterization(), "vp_eps");
  EXPECT_EQ(info.frames(), 8u);
  EXPECT_EQ(info.height(), 16u);
  EXPECT_EQ(info.width(), 24u);
  EXPECT_EQ(info.channels(), 1u);
  EXPECT_EQ(info.fps(), 12u);
  EXPECT_THAT(info.default_stage_steps(), ElementsAre(6, 3));
  EXPECT_FLOAT_EQ(info.default_guidance_scale(), 2.5f);
  EXPECT_THAT(info.vocabulary(), ElementsAre("red", "circle"));
  EXPECT_EQ(info.tokenizer_kind(), "words");
  EXPECT_EQ(info.max_tokens(), 32u);
  EXPECT_TRUE(info.tokenizer_model().empty());
  EXPECT_FALSE(info.has_latent());

  // What the front rebuilds from a worker's announcement validates requests the same way.
  absl::StatusOr<ModelSpec> back = ModelSpecFromInfo(info);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->manifest.name, m.name);
  EXPECT_EQ(back->manifest.description, m.description);
  EXPECT_EQ(back->manifest.parameterization, m.parameterization);
  EXPECT_EQ(back->manifest.frames, m.frames);
  EXPECT_EQ(back->manifest.height, m.height);
  EXPECT_EQ(back->manifest.width, m.width);
  EXPECT_EQ(back->manifest.fps, m.fps);
  EXPECT_EQ(back->manifest.stages, m.stages);
  EXPECT_EQ(back->manifest.default_stage_steps, m.default_stage_steps);
  EXPECT_DOUBLE_EQ(back->manifest.default_guidance_scale, m.default_guidance_scale);
  EXPECT_EQ(back->tokenizer.words(), tokenizer.words());
}

TEST(ModelInfoTest, RejectsAnnouncementsNoManifestProduces) {
  tpdiff::v1::ModelInfo info;
  info.set_name("m");
  info.set_parameterization("flow_matching");
  info.set_frames(16);
  info.set_height(32);
  info.set_width(32);
  info.add_default_stage_steps(4);
  info.add_vocabulary("red");
  ASSERT_TRUE(ModelSpecFromInfo(info).ok());

  tpdiff::v1::ModelInfo bad = info;
  bad.clear_name();
  EXPECT_EQ(ModelSpecFromInfo(bad).status().message(), "model_info.name: required");
  bad = info;
  bad.set_parameterization("ddpm");
  EXPECT_THAT(std::string(ModelSpecFromInfo(bad).status().message()),
              ::testing::StartsWith("model_info.parameterization: "));
  bad = info;
  bad.clear_default_stage_steps();
  EXPECT_EQ(ModelSpecFromInfo(bad).status().message(), "model_info.default_stage_steps: required");
  bad = info;
  bad.clear_vocabulary();
  EXPECT_THAT(std::string(ModelSpecFromInfo(bad).status().message()),
              ::testing::StartsWith("model_info.vocabulary: "));
  bad = info;
  bad.set_frames(0);
  EXPECT_THAT(std::string(ModelSpecFromInfo(bad).status().message()), ::testing::StartsWith("model_info.frames: "));
}

}  // namespace
}  // namespace tpdiff::spec
