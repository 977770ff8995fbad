#ifndef TPDIFF_MODEL_LATENT_MODULES_H_
#define TPDIFF_MODEL_LATENT_MODULES_H_

// The three TorchScript modules of a latent package (manifest kind "latent"): text encoder,
// denoiser and VAE decoder, with the forward contracts of docs/models.md:
//   text encoder: forward(tokens [B,L] int64, mask [B,L] int64) -> [B,L,dim] float
//   denoiser:     forward(latents [B,C,T',h,w], timestep [B] float, stage [B] int64,
//                         context [B,L,dim], mask [B,L] int64) -> [B,C,T',h,w]
//   VAE decoder:  forward(latents [B,C,T',h,w]) -> [B,3,T,H,W] in [-1, 1]
// Weights run in the manifest's dtype on CUDA (float32 on the CPU); every tensor crossing
// this boundary is float32, so the sampler's arithmetic stays float32.

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/spec/manifest.h"

namespace tpdiff::model {

// What the modules are loaded and checked against, from the manifest (sizes in latent
// units unless named pixel).
struct LatentModuleConfig {
  std::string text_encoder_file;  // absolute or relative to the working directory
  std::string denoiser_file;
  std::string vae_file;
  // The weights' precision on CUDA (the CPU always runs float32).
  spec::ModuleDtype text_encoder_dtype = spec::ModuleDtype::kFloat32;
  spec::ModuleDtype denoiser_dtype = spec::ModuleDtype::kFloat32;
  spec::ModuleDtype vae_dtype = spec::ModuleDtype::kFloat32;
  int max_tokens = 0;
  int context_dim = 0;
  int latent_channels = 0;
  int latent_height = 0;  // h = pixel height / spatial_factor
  int latent_width = 0;
  int spatial_factor = 1;
  int temporal_factor = 1;
  bool causal_first_frame = false;
  // Latent frames T'_k of stage k at index k-1 (stage 1 = full frame rate, the last = fewest).
  std::vector<int> stage_latent_frames;
  // Per channel (latent_channels values) or one value for all: vae input = z / scale + shift.
  std::vector<double> scale = {1.0};
  std::vector<double> shift = {0.0};
};

// Pixel frames the decoder makes from `latent_frames`: 1 + temporal_factor * (T' - 1) with a
// causal first frame, else temporal_factor * T'.
int DecodedFrames(const LatentModuleConfig& config, int latent_frames);

// The one-line cause of a TorchScript or LibTorch error as clients may see it: the final
// "SomeError: message" of an interpreter traceback, without the traceback and without the
// module author's file names and source lines (those stay in the worker's log).
std::string ScriptErrorForClient(absl::string_view what);

// The loaded modules. Shared read-only by every slot of a worker and every LatentDenoiser.
//
// Thread safety: immutable after Load; every method is const and may run on several threads
// at once (torch::jit::Module::forward without autograd keeps a call's values in the call's
// own frame; a module that assigns to its own attributes in forward breaks this and is
// outside the contract).
class LatentModules {
 public:
  // Loads the three modules onto `device`, casts their weights to the configured dtypes
  // (CUDA only; TF32 matmuls are allowed there) and runs the load-time checks: the encoder
  // on max_tokens, the denoiser at every stage's latent shape with batch 2 (guidance), the
  // decoder on the fewest and the most latent frames. NOT_FOUND for a missing file,
  // INVALID_ARGUMENT for a file that is not TorchScript, a wrong signature or an output of
  // the wrong shape or dtype, FAILED_PRECONDITION for a forward that raises. Messages name
  // the module, the input and the expected shape; the modules' own tracebacks go to stderr
  // (the worker's log) only.
  static absl::StatusOr<std::shared_ptr<const LatentModules>> Load(
      const LatentModuleConfig& config, torch::Device device);

  const LatentModuleConfig& config() const { return config_; }
  torch::Device device() const { return device_; }

  // tokens, mask: [B, L] int64 -> context [B, L, dim] float32 on device().
  absl::StatusOr<torch::Tensor> EncodeText(const torch::Tensor& tokens,
                                           const torch::Tensor& mask) const;
  // The denoiser's forward: float32 in (any device), float32 out on device(), shape checked.
  absl::StatusOr<torch::Tensor> Denoise(const torch::Tensor& latents,
                                        const torch::Tensor& timestep,
                                        const torch::Tensor& stage, const torch::Tensor& context,
                                        const torch::Tensor& mask) const;
  // Sampler latents z [B, C, T', h, w] -> frames [B, 3, T, H, W] float32 (vae input
  // z / scale + shift).
  absl::StatusOr<torch::Tensor> Decode(const torch::Tensor& z) const;

 private:
  struct Module;
  LatentModules(LatentModuleConfig config, torch::Device device);
  absl::Status Check() const;

  LatentModuleConfig config_;
  torch::Device device_;
  std::shared_ptr<Module> text_encoder_;
  std::shared_ptr<Module> denoiser_;
  std::shared_ptr<Module> vae_;
  torch::Tensor scale_;  // [1, C, 1, 1, 1] float32 on device_
  torch::Tensor shift_;
};

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_LATENT_MODULES_H_
