#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "tpdiff/spec/manifest.h"

namespace tpdiff::spec {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

// The contract's example: a miniature Wan-like package, 17 pixel frames = 1 + 4 * 4 latents.
json ContractJson() {
  return json::parse(R"({
    "name": "mini-wan", "kind": "latent", "description": "a miniature latent model",
    "frames": 17, "height": 64, "width": 64, "fps": 8, "stages": 3, "boundaries": [],
    "default_stage_steps": [4, 4, 4], "default_guidance_scale": 5.0,
    "schedule": {"type": "flow_matching", "shift": 3.0, "timestep_scale": 1000,
                 "prediction": "flow_velocity"},
    "tokenizer": {"kind": "sentencepiece", "file": "tokenizer.model", "max_tokens": 32},
    "text_encoder": {"file": "text_encoder.pt", "dim": 64, "dtype": "float32"},
    "denoiser": {"file": "denoiser.pt", "dtype": "bfloat16"},
    "vae": {"file": "vae_decoder.pt", "latent_channels": 8, "temporal_factor": 4,
            "spatial_factor": 8, "causal_first_frame": true,
            "scale": [1, 2, 3, 4, 5, 6, 7, 8], "shift": 0.5, "dtype": "float16"}
  })");
}

TEST(LatentManifestTest, ParsesTheContractExample) {
  absl::StatusOr<ModelManifest> m = ParseManifest(ContractJson().dump());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->is_latent());
  EXPECT_EQ(m->parameterization, Parameterization::kFlowMatching);
  EXPECT_EQ(m->frames, 17);
  EXPECT_EQ(m->channels, 3);
  const LatentConfig& l = m->latent;
  EXPECT_EQ(l.schedule.shift, 3.0);
  EXPECT_EQ(l.schedule.timestep_scale, 1000.0);
  EXPECT_EQ(l.schedule.prediction, Prediction::kFlowVelocity);
  EXPECT_EQ(l.tokenizer.kind, TokenizerKind::kSentencePiece);
  EXPECT_EQ(l.tokenizer.file, "tokenizer.model");
  EXPECT_EQ(l.tokenizer.max_tokens, 32);
  EXPECT_EQ(l.text_encoder.dim, 64);
  EXPECT_EQ(l.denoiser.dtype, ModuleDtype::kBFloat16);
  EXPECT_EQ(l.vae.dtype, ModuleDtype::kFloat16);
  EXPECT_EQ(l.vae.latent_channels, 8);
  EXPECT_TRUE(l.vae.causal_first_frame);
  EXPECT_EQ(l.vae.scale, (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(l.vae.shift, (std::vector<double>{0.5}));

  // ManifestToJson writes what ParseManifest reads.
  absl::StatusOr<ModelManifest> again = ParseManifest(ManifestToJson(*m));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ManifestToJson(*again), ManifestToJson(*m));
  EXPECT_EQ(again->latent.vae.scale, l.vae.scale);
  EXPECT_EQ(again->latent.schedule.shift, 3.0);
}

TEST(LatentManifestTest, ParsesVpSchedulesWithDefaults) {
  json j = ContractJson();
  j["schedule"] = {{"type", "vp"}, {"prediction", "v"}, {"beta_schedule", "linear"},
                   {"beta_start", 0.0001}, {"beta_end", 0.02}, {"num_train_timesteps", 500}};
  absl::StatusOr<ModelManifest> m = ParseManifest(j.dump());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->parameterization, Parameterization::kVpEps);
  EXPECT_EQ(m->latent.schedule.prediction, Prediction::kV);
  EXPECT_EQ(m->latent.schedule.beta_schedule, BetaSchedule::kLinear);
  EXPECT_EQ(m->latent.schedule.num_train_timesteps, 500);
  absl::StatusOr<ModelManifest> again = ParseManifest(ManifestToJson(*m));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->latent.schedule.beta_end, 0.02);

  j["schedule"] = {{"type", "vp"}};  // epsilon, scaled_linear 0.00085..0.012, 1000
  m = ParseManifest(j.dump());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->latent.schedule.prediction, Prediction::kEpsilon);
  EXPECT_EQ(m->latent.schedule.beta_schedule, BetaSchedule::kScaledLinear);
  EXPECT_EQ(m->latent.schedule.num_train_timesteps, 1000);
}

TEST(LatentManifestTest, RejectsEachBadFieldByName) {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& j) { j["frames"] = 18; },
       "frames: 18 must be 1 + vae.temporal_factor (4) * N with N a positive multiple of "
       "2^(stages-1) = 4"},
      // 1 + 4 * 2: N = 2 is not divisible by 4 for 3 stages.
      {[](json& j) { j["frames"] = 9; }, "frames: 9 must be 1 + vae.temporal_factor (4)"},
      {[](json& j) { j["vae"]["causal_first_frame"] = false; },
       "frames: 17 must be vae.temporal_factor (4) * N"},
      {[](json& j) { j["height"] = 60; }, "height: 60 is not a multiple of vae.spatial_factor 8"},
      {[](json& j) { j["width"] = 12; }, "width: 12 is not a multiple of vae.spatial_factor 8"},
      {[](json& j) { j["vae"]["scale"] = json::array({1, 2}); },
       "vae.scale: 2 values; expected latent_channels (8) or one number"},
      {[](json& j) { j["vae"]["scale"] = 0; }, "vae.scale: 0 must be finite and non-zero"},
      {[](json& j) { j["vae"]["shift"] = "x"; },
       "vae.shift: must be a number or an array of numbers"},
      {[](json& j) { j["vae"]["colour"] = 1; }, "vae.colour: unknown field; known fields: file"},
      {[](json& j) { j["vae"].erase("causal_first_frame"); }, "vae.causal_first_frame: missing"},
      {[](json& j) { j["vae"]["file"] = "../vae.pt"; }, "vae.file: \"../vae.pt\" must not"},
      {[](json& j) { j["schedule"]["shift"] = 0.5; }, "schedule.shift: 0.5 outside [1, 100]"},
      {[](json& j) { j["schedule"]["timestep_scale"] = 0; }, "schedule.timestep_scale: 0 must"},
      {[](json& j) { j["schedule"]["prediction"] = "epsilon"; },
       "schedule.prediction: \"epsilon\" is not \"flow_velocity\""},
      {[](json& j) { j["schedule"]["beta_start"] = 0.1; },
       "schedule.beta_start: only for type \"vp\""},
      {[](json& j) { j["schedule"] = {{"type", "vp"}, {"shift", 2}}; },
       "schedule.shift: only for type \"flow_matching\""},
      {[](json& j) { j["schedule"] = {{"type", "vp"}, {"prediction", "flow_velocity"}}; },
       "schedule.prediction: \"flow_velocity\" is not \"epsilon\" or \"v\""},
      {[](json& j) { j["schedule"] = {{"type", "vp"}, {"beta_start", 0.02}, {"beta_end", 0.01}}; },
       "schedule.beta_end: 0.01 outside (beta_start 0.02, 1)"},
      {[](json& j) { j["schedule"] = {{"type", "vp"}, {"beta_start", 0}}; },
       "schedule.beta_start: 0 outside (0, 1)"},
      {[](json& j) { j["schedule"] = {{"type", "vp"}, {"num_train_timesteps", 1}}; },
       "schedule.num_train_timesteps: 1 outside [2, 100000]"},
      {[](json& j) { j["schedule"] = {{"type", "ddim"}}; },
       "schedule.type: \"ddim\" is not \"flow_matching\" or \"vp\""},
      {[](json& j) { j.erase("schedule"); }, "schedule: missing (required for kind \"latent\")"},
      {[](json& j) { j["tokenizer"]["max_tokens"] = 513; },
       "tokenizer.max_tokens: 513 outside [1, 512]"},
      {[](json& j) { j["tokenizer"]["max_tokens"] = 0; }, "tokenizer.max_tokens: 0 outside"},
      {[](json& j) { j["tokenizer"]["kind"] = "bpe"; },
       "tokenizer.kind: \"bpe\" is not \"words\" or \"sentencepiece\""},
      {[](json& j) { j["text_encoder"]["dtype"] = "float64"; },
       "text_encoder.dtype: \"float64\" is not float32, float16 or bfloat16"},
      {[](json& j) { j["text_encoder"].erase("dim"); }, "text_encoder.dim: missing"},
      {[](json& j) { j["denoiser"] = "denoiser.pt"; }, "denoiser: must be an object"},
      // v1 fields are not part of a latent manifest.
      {[](json& j) { j["weights_file"] = "w.safetensors"; },
       "weights_file: unknown field; known fields: name, kind, description, frames"},
      {[](json& j) { j["channels"] = 3; }, "channels: unknown field"},
  };
  for (const auto& [edit, want] : cases) {
    json j = ContractJson();
    edit(j);
    absl::StatusOr<ModelManifest> m = ParseManifest(j.dump());
    ASSERT_FALSE(m.ok()) << want;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(want));
  }
}

TEST(LatentManifestTest, LatentShapeIsOneRuleForAllFrameCounts) {
  VaeConfig vae;
  vae.temporal_factor = 4;
  vae.spatial_factor = 8;
  vae.causal_first_frame = true;
  // Wan's 81 frames: 1 + 80/4 = 21 latent frames, N = 20 is divisible by 4 (3 stages) ...
  absl::StatusOr<LatentShape> shape = LatentShapeFor(vae, 3, 81, 480, 832);
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(shape->frames, 21);
  EXPECT_EQ(shape->height, 60);
  EXPECT_EQ(shape->width, 104);
  // ... but not by 8 (4 stages).
  EXPECT_THAT(std::string(LatentShapeFor(vae, 4, 81, 480, 832, "num_frames").status().message()),
              HasSubstr("num_frames: 81 must be 1 + vae.temporal_factor (4) * N with N a "
                        "positive multiple of 2^(stages-1) = 8"));
  EXPECT_THAT(std::string(LatentShapeFor(vae, 4, 81, 480, 832).status().message()),
              HasSubstr("frames: 81 must be"));
  EXPECT_EQ(LatentShapeFor(vae, 1, 5, 8, 8)->frames, 2);
  vae.causal_first_frame = false;
  EXPECT_EQ(LatentShapeFor(vae, 3, 16, 8, 8)->frames, 4);
  EXPECT_FALSE(LatentShapeFor(vae, 3, 8, 8, 8).ok());  // N = 2
}

TEST(LatentManifestTest, V1KindsAreUnchanged) {
  // The v1 list of known fields, exactly as before latent packages existed.
  json j = ContractJson();
  j["kind"] = "torchscript";
  absl::StatusOr<ModelManifest> m = ParseManifest(j.dump());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("unknown field; known fields: name, kind, description, parameterization, "
                        "frames, height, width, channels, fps, stages, boundaries, "
                        "default_stage_steps, default_guidance_scale, weights_file, "
                        "vocabulary_file, network"));
}

}  // namespace
}  // namespace tpdiff::spec
