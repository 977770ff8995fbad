#ifndef TPDIFF_TESTS_UNIT_MODEL_TINY_LATENT_PACKAGE_H_
#define TPDIFF_TESTS_UNIT_MODEL_TINY_LATENT_PACKAGE_H_

// A tiny latent package (kind "latent") written without Python: its three modules are
// defined in TorchScript source and saved like exported ones. Latent channels 4, context dim 6,
// temporal factor 2 with a causal first frame, spatial factor 2; 9 frames of 8x8 pixels
// (5 latent frames of 4x4), 3 stages of 2 steps, guidance 2, flow matching with shift 3, a
// words tokenizer of 8 tokens. The decoder repeats frames and pixels of the first three
// channels through tanh, so its frames depend on every latent value it reads.

#include <stdlib.h>

#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/statusor.h"

namespace tpdiff::model::testing {

inline constexpr char kTinyEncoder[] = R"(
def forward(self, tokens, mask):
    x = (tokens.float() * mask.float()).unsqueeze(-1)
    return x.expand(-1, -1, 6) * self.w
)";
inline constexpr char kTinyDenoiser[] = R"(
def forward(self, latents, timestep, stage, context, mask):
    c = timestep * 0.001 + stage.float() + context.mean([1, 2]) + mask.float().sum(1)
    return latents * self.w + c.view(-1, 1, 1, 1, 1)
)";
inline constexpr char kTinyDecoder[] = R"(
def forward(self, latents):
    first = latents[:, :3, :1]
    rest = latents[:, :3, 1:].repeat_interleave(2, dim=2)
    x = torch.cat([first, rest], 2)
    x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
    return torch.tanh(x * self.w)
)";

// Saves a module with one parameter `w` = 0.5 and `source` as its methods.
inline void SaveTinyModule(const std::string& path, const std::string& source) {
  torch::jit::Module module("M");
  module.register_parameter("w", torch::full({1}, 0.5f), /*is_buffer=*/false);
  module.define(source);
  module.save(path);
}

inline constexpr char kTinyLatentManifest[] = R"({
  "name": "NAME", "kind": "latent", "frames": 9, "height": 8, "width": 8, "fps": 8,
  "stages": 3, "default_stage_steps": [2, 2, 2], "default_guidance_scale": 2.0,
  "schedule": {"type": "flow_matching", "shift": 3.0, "timestep_scale": 1000,
               "prediction": "flow_velocity"},
  "tokenizer": {"kind": "words", "file": "vocab.txt", "max_tokens": 8},
  "text_encoder": {"file": "text_encoder.pt", "dim": 6, "dtype": "float32"},
  "denoiser": {"file": "denoiser.pt", "dtype": "bfloat16"},
  "vae": {"file": "vae_decoder.pt", "latent_channels": 4, "temporal_factor": 2,
          "spatial_factor": 2, "causal_first_frame": true, "scale": [2.0, 1.0, 1.0, 0.5],
          "shift": 0.25, "dtype": "float16"}
})";

// Writes <fresh temp dir>/<name>/ and returns the temp dir (the models dir).
inline absl::StatusOr<std::string> WriteTinyLatentPackage(const std::string& name) {
  namespace fs = std::filesystem;
  std::string tmpl = (fs::temp_directory_path() / "tpdiff-latent-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  const fs::path dir = fs::path(tmpl) / name;
  fs::create_directories(dir);
  SaveTinyModule((dir / "text_encoder.pt").string(), kTinyEncoder);
  SaveTinyModule((dir / "denoiser.pt").string(), kTinyDenoiser);
  SaveTinyModule((dir / "vae_decoder.pt").string(), kTinyDecoder);
  std::ofstream(dir / "vocab.txt") << "a\nred\nball\nrolling\nright\nblue\n";
  std::string manifest = kTinyLatentManifest;
  manifest.replace(manifest.find("NAME"), 4, name);
  std::ofstream(dir / "model.json") << manifest;
  return tmpl;
}

}  // namespace tpdiff::model::testing

#endif  // TPDIFF_TESTS_UNIT_MODEL_TINY_LATENT_PACKAGE_H_
