#ifndef TPDIFF_MODEL_NETWORK_H_
#define TPDIFF_MODEL_NETWORK_H_

// The built-in text-to-video denoiser: a small factorized space/time transformer on video
// patches (DiT-style adaLN-Zero blocks) with a learned caption encoder.
//
// Per block, on tokens h [B, T, N, D] (N = patches per frame):
//   spatial self-attention within each frame  (adaLN shift/scale/gate)
//   temporal self-attention across frames per patch position (adaLN shift/scale/gate)
//   cross-attention to the caption tokens (plain pre-norm)
//   MLP (adaLN shift/scale/gate)
// Conditioning vector = embed(t) + embed(stage) + proj(pooled caption). Temporal positions are
// stage consistent (method note, section 4): frame n of stage k sits at full-rate position
// n * 2^(k-1), encoded sinusoidally, so every stage shares one positional geometry.
// Every residual branch and the output projection start at zero, so the untrained network
// predicts 0 and early training is stable.
// Output = patch decoder + c(t, stage, caption) * x_t with a learned per-channel scalar c: the
// target (velocity / eps_k) carries the input's noise pixel for pixel, which a token narrower
// than a patch (8x8x3 = 192 values into width 128) cannot pass through; the skip carries it
// and the transformer only predicts the signal part.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tpdiff/core/denoiser.h"
#include "tpdiff/model/safetensors.h"
#include "tpdiff/spec/network_config.h"

namespace tpdiff::model {

// The hyper-parameters are part of the model manifest, so the spec library owns them.
using NetworkConfig = spec::NetworkConfig;

// Named configs: "tiny" (unit tests, ~30k parameters), "cpu" (NetworkConfig's defaults plus a
// 32-channel refinement: 8x8 patches, width 128, depth 4, 2.25M parameters, sized for a
// 90-minute run on 2 CPU cores), "gpu" (4x4 patches, width 192, depth 6, 32-channel
// refinement, 6.9M parameters, for an H100/H200 run). Word conditioning is off in all.
// INVALID_ARGUMENT for another name.
absl::StatusOr<NetworkConfig> NetworkPreset(const std::string& name);

// Stage-consistent temporal positions: [frames] int64 with value n * 2^(stage-1).
torch::Tensor TemporalPositions(int stage, int frames);

// Sinusoidal features [P, dim] of (float) positions [P].
torch::Tensor SinusoidalFeatures(const torch::Tensor& positions, int dim, double max_period);

// Multiply-accumulate count x 2 of one forward pass for one clip (matmuls and attention only).
int64_t EstimateForwardFlops(const NetworkConfig& config, int frames, int height, int width,
                             int tokens = 32);

namespace network_internal {

class AttentionImpl : public torch::nn::Module {
 public:
  // Self-attention when kv_dim == 0 (one fused qkv projection), cross-attention otherwise.
  AttentionImpl(int dim, int heads, int kv_dim = 0);
  // x [B, Lq, D]; context [B, Lk, kv_dim] (undefined for self-attention); key_bias
  // [B, Lk] additive float (0 or -inf-like) or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {},
                        const torch::Tensor& key_bias = {});
  // Cross-attention only: the context's keys and values ([B, Lk, D] each), and attention of
  // x to them. forward(x, context, bias) == Attend(x, KeysValues(context), bias); the split
  // lets a caller reuse the caption's keys across the steps of a sampled stage.
  std::pair<torch::Tensor, torch::Tensor> KeysValues(const torch::Tensor& context);
  torch::Tensor Attend(const torch::Tensor& x, const std::pair<torch::Tensor, torch::Tensor>& kv,
                       const torch::Tensor& key_bias);
  torch::nn::Linear out{nullptr};

 private:
  int dim_;
  int heads_;
  bool cross_;
  torch::nn::Linear qkv_{nullptr}, q_{nullptr}, kv_{nullptr};
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int dim, int hidden);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// Pre-norm transformer layer for the caption encoder.
class TextLayerImpl : public torch::nn::Module {
 public:
  TextLayerImpl(int dim, int heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_bias);

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  Attention attn_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(TextLayer);

class VideoBlockImpl : public torch::nn::Module {
 public:
  VideoBlockImpl(int dim, int heads, int mlp_hidden, int text_dim);
  // h [B, T, N, D]; cond [B, D] (already SiLU'd); caption_kv: the cross-attention's keys
  // and values of the encoded caption (CaptionKeysValues); text_bias [B, L].
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& cond,
                        const std::pair<torch::Tensor, torch::Tensor>& caption_kv,
                        const torch::Tensor& text_bias);
  std::pair<torch::Tensor, torch::Tensor> CaptionKeysValues(const torch::Tensor& text);

 private:
  torch::nn::Linear modulation_{nullptr};  // cond -> 9 D (shift, scale, gate) x 3
  torch::nn::LayerNorm norm_s_{nullptr}, norm_t_{nullptr}, norm_c_{nullptr}, norm_m_{nullptr};
  Attention spatial_{nullptr}, temporal_{nullptr}, cross_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(VideoBlock);

}  // namespace network_internal

// Everything one forward pass computes from the caption, the stage and the clip geometry
// alone, not from x or t. A sampled video makes 10 calls per stage with the same caption, so
// the sampler's adapter (NetworkDenoiser) computes this once per stage: at the shapes model's
// size a call's cost is mostly per-op overhead, and these are a good part of its ops.
struct StepInvariants {
  int stage = 0;
  std::vector<int64_t> video_shape;  // [B, C, T, H, W] these were prepared for
  torch::Tensor text;                // [B, 1 + L, text_width] encoded caption
  torch::Tensor text_bias;           // [B, 1 + L] additive key bias
  torch::Tensor caption_cond;        // [B, D] stage embedding + pooled caption (+ word vectors)
  torch::Tensor token_offset;        // [B or 1, T, N, D] positions (+ word layout prior)
  std::vector<std::pair<torch::Tensor, torch::Tensor>> caption_kv;  // per block
};

// The network. forward() follows the TorchScript contract of model_package.h and throws
// c10::Error on bad shapes (the Denoiser adapter validates first and returns a Status).
class TpdiffNetImpl : public torch::nn::Module {
 public:
  explicit TpdiffNetImpl(const NetworkConfig& config);

  // x [B, C, T, H, W] float; t [B] float; stage [B] int64; tokens [B, L] int64, L <= max_tokens.
  // Equal to ForwardPrepared(x, t, Prepare(x.sizes(), stage, tokens)).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& stage,
                        const torch::Tensor& tokens);
  // The caption/stage/geometry part of forward (differentiable, like forward), on the device
  // of `tokens`.
  StepInvariants Prepare(torch::IntArrayRef video_shape, const torch::Tensor& stage,
                         const torch::Tensor& tokens);
  // The rest: x must have the shape `prepared` was made for.
  torch::Tensor ForwardPrepared(const torch::Tensor& x, const torch::Tensor& t,
                                const StepInvariants& prepared);

  // Caption encoding: returns ([B, 1 + L, text_width] states, [B, 1 + L] additive key bias).
  // Position 0 is a learned null token that is never masked, so an all-padding
  // (unconditional) caption still has one valid key.
  std::pair<torch::Tensor, torch::Tensor> EncodeText(const torch::Tensor& tokens);

  const NetworkConfig& config() const { return config_; }
  int64_t ParameterCount() const;

 private:
  NetworkConfig config_;
  torch::nn::Linear patch_embed_{nullptr};
  torch::Tensor spatial_pos_;  // [Nmax_h * Nmax_w, D] learned
  torch::nn::Linear time_fc1_{nullptr}, time_fc2_{nullptr};
  torch::nn::Embedding stage_embed_{nullptr};
  torch::nn::Embedding token_embed_{nullptr};
  torch::Tensor text_pos_;    // [1 + max_tokens, text_width] learned
  torch::Tensor null_token_;  // [text_width] learned
  torch::nn::ModuleList text_layers_{nullptr};
  torch::nn::LayerNorm text_norm_{nullptr};
  torch::nn::Linear text_pool_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm final_norm_{nullptr};
  torch::nn::Linear final_modulation_{nullptr};  // cond -> shift, scale
  torch::nn::Linear final_proj_{nullptr};        // D -> C * patch^2, zero-initialised
  torch::nn::Linear input_skip_{nullptr};        // cond -> C: output += skip * x (see .cc)
  torch::nn::Conv2d refine_in_{nullptr}, refine_out_{nullptr};  // when refine_channels > 0
  torch::nn::Embedding word_cond_{nullptr};  // [vocab, D], zero at start; word_conditioning
  torch::Tensor word_layout_;  // [vocab, word_layout_frames, grid patches, D]; see config
};
TORCH_MODULE(TpdiffNet);

// The network's parameters by their module path ("blocks.0.spatial.qkv.weight", ...), each
// name prefixed with `prefix`.
NamedTensors NetworkState(const TpdiffNetImpl& net, const std::string& prefix = "");
// Copies tensors named prefix + parameter path into the network (converting dtype/device).
// INVALID_ARGUMENT naming the first missing or mis-shaped tensor; extra tensors are ignored.
// With `missing` non-null, absent tensors are not an error: their parameter paths are
// appended there and those parameters keep their initial values (warm starts of a network
// that gained zero-initialised parts).
absl::Status LoadNetworkState(TpdiffNetImpl& net,
                              const std::map<std::string, torch::Tensor>& tensors,
                              const std::string& prefix = "",
                              std::vector<std::string>* missing = nullptr);

// Adapts a TpdiffNet to the sampler's Denoiser interface: validates shapes and token ids
// (INVALID_ARGUMENT naming the input and limit), runs without autograd, converts LibTorch
// exceptions to INTERNAL. Reuses the last call's StepInvariants while the tokens, stage, input
// shape, device and weights (their in-place version counters) are unchanged: within one stage
// of a video.
// Shares ownership of the network. One NetworkDenoiser is for one thread at a time (the
// StepInvariants are its own); several over one network may predict concurrently, since
// Predict only reads the network (the contract of LoadedModel in model_package.h).
class NetworkDenoiser : public core::Denoiser {
 public:
  explicit NetworkDenoiser(TpdiffNet net);
  absl::StatusOr<torch::Tensor> Predict(const core::DenoiserInput& input) override;
  TpdiffNet& net() { return net_; }

 private:
  struct Prepared {
    torch::Tensor tokens;  // copies: the caller may reuse its tensors for another call
    torch::Tensor stage;
    torch::Device device = torch::kCPU;
    const void* weights_data = nullptr;  // first parameter's storage: moves change it
    int64_t weights_version = 0;
    StepInvariants invariants;
  };
  TpdiffNet net_;
  // The network's parameter handles, taken once: moves and in-place writes keep the handles
  // (Module::to swaps their storage), so their data pointers and versions stay observable.
  std::vector<torch::Tensor> parameters_;
  std::optional<Prepared> prepared_;
};

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_NETWORK_H_
