#include "tpdiff/model/network.h"

#include <torch/nn/init.h>
#include <torch/version.h>

#include <array>
#include <cmath>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tpdiff/model/cpu_attention.h"
#include "tpdiff/model/cpu_modulation.h"
#include "tpdiff/core/torch_status.h"

namespace tpdiff::model {
namespace {

namespace nn = torch::nn;

// Finite rather than -inf so a row can never turn into NaN; every row keeps >= 1 valid key.
constexpr float kMaskedBias = -1e9f;

nn::Linear MakeLinear(int in, int out, bool bias = true) {
  return nn::Linear(nn::LinearOptions(in, out).bias(bias));
}

nn::LayerNorm MakeNorm(int dim, bool affine) {
  return nn::LayerNorm(nn::LayerNormOptions({dim}).elementwise_affine(affine).eps(1e-6));
}

void ZeroLinear(nn::Linear& linear) {
  torch::NoGradGuard no_grad;
  linear->weight.zero_();
  if (linear->bias.defined()) linear->bias.zero_();
}

// Xavier-uniform weights and zero biases: the usual transformer initialisation.
void InitLinear(nn::Linear& linear) {
  torch::NoGradGuard no_grad;
  nn::init::xavier_uniform_(linear->weight);
  if (linear->bias.defined()) linear->bias.zero_();
}

// x * (1 + scale) + shift, and h + gate * branch, each as one fused op: at the shapes
// model's size a forward pass costs per op far more than per element.
torch::Tensor Modulate(const torch::Tensor& x, const torch::Tensor& shift,
                       const torch::Tensor& scale) {
  return torch::addcmul(shift, x, 1 + scale);
}

torch::Tensor GatedResidual(const torch::Tensor& h, const torch::Tensor& gate,
                            const torch::Tensor& branch) {
  return torch::addcmul(h, gate, branch);
}

// A block's adaLN-Zero modulation [B, K * D]: K chunks of width D (shift, scale and gate per
// branch) applied to activations [B, T, N, D]. At inference on the CPU the fused kernels of
// cpu_modulation.h read the chunks in place; otherwise tensor ops run on chunk views.
class Modulation {
 public:
  Modulation(torch::Tensor mod, const torch::Tensor& activations)
      : mod_(std::move(mod)),
        width_(activations.size(-1)),
        fused_(CanUseCpuModulation(activations, mod_)) {}

  // norm(x) * (1 + scale) + shift, for a LayerNorm without affine parameters.
  torch::Tensor NormModulate(nn::LayerNorm& norm, const torch::Tensor& x, int64_t shift,
                             int64_t scale) const {
    if (fused_ && !norm->options.elementwise_affine()) {
      return CpuNormModulate(x, mod_, shift, scale, norm->options.eps());
    }
    return Modulate(norm(x), Chunk(shift), Chunk(scale));
  }

  // h + gate * branch.
  torch::Tensor GatedResidual(const torch::Tensor& h, int64_t gate,
                              const torch::Tensor& branch) const {
    if (fused_ && CanUseCpuGatedResidual(h, mod_, branch)) {
      return CpuGatedResidual(h, mod_, gate, branch);
    }
    return tpdiff::model::GatedResidual(h, Chunk(gate), branch);
  }

 private:
  // Chunk c as [B, 1, 1, D], broadcasting over frames and patches.
  torch::Tensor Chunk(int64_t c) const {
    return mod_.narrow(1, c * width_, width_).unsqueeze(1).unsqueeze(1);
  }

  torch::Tensor mod_;
  int64_t width_;
  bool fused_;
};

// Multi-head scaled dot-product attention on [B, L, D] projections; inference on the CPU
// takes the one-pass kernel of cpu_attention.h.
torch::Tensor MultiHead(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        int heads, const torch::Tensor& key_bias) {
  if (CanUseCpuAttention(q, k, v, key_bias)) return CpuAttention(q, k, v, heads, key_bias);
  const int64_t b = q.size(0), lq = q.size(1), lk = k.size(1), d = q.size(2);
  const int64_t dh = d / heads;
  const torch::Tensor qh = q.reshape({b, lq, heads, dh}).transpose(1, 2);
  const torch::Tensor kh = k.reshape({b, lk, heads, dh}).transpose(1, 2);
  const torch::Tensor vh = v.reshape({b, lk, heads, dh}).transpose(1, 2);
  torch::Tensor bias;
  if (key_bias.defined()) bias = key_bias.to(q.scalar_type()).view({b, 1, 1, lk});
#if TORCH_VERSION_MAJOR >= 2
  // Fused kernels (flash / memory-efficient) on CUDA; same math as the fallback below.
  std::optional<torch::Tensor> mask;
  if (bias.defined()) mask = bias;
  const torch::Tensor out = at::scaled_dot_product_attention(qh, kh, vh, mask);
#else
  torch::Tensor scores = torch::matmul(qh, kh.transpose(-2, -1)) * (1.0 / std::sqrt(double(dh)));
  if (bias.defined()) scores = scores + bias;
  const torch::Tensor out = torch::matmul(torch::softmax(scores, -1), vh);
#endif
  return out.transpose(1, 2).reshape({b, lq, d});
}

}  // namespace

absl::StatusOr<NetworkConfig> NetworkPreset(const std::string& name) {
  NetworkConfig c;
  if (name == "cpu") {
    c.refine_channels = 32;
    return c;
  }
  if (name == "tiny") {
    c.width = 32;
    c.depth = 1;
    c.heads = 2;
    c.text_width = 16;
    c.text_layers = 1;
    c.text_heads = 2;
    return c;
  }
  if (name == "gpu") {
    c.patch = 4;
    c.width = 192;
    c.depth = 6;
    c.heads = 6;
    c.text_width = 128;
    c.refine_channels = 32;
    return c;
  }
  return absl::InvalidArgumentError(absl::StrCat("preset: \"", name, "\" is not tiny, cpu or gpu"));
}

// ---------------------------------------------------------------------------------------------
// Positions and cost

torch::Tensor TemporalPositions(int stage, int frames) {
  return torch::arange(static_cast<int64_t>(frames), torch::kLong) * (int64_t{1} << (stage - 1));
}

torch::Tensor SinusoidalFeatures(const torch::Tensor& positions, int dim, double max_period) {
  const int half = dim / 2;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(positions.device());
  const torch::Tensor freqs =
      torch::exp(torch::arange(half, opts) * (-std::log(max_period) / std::max(half, 1)));
  const torch::Tensor args = positions.to(torch::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  torch::Tensor out = torch::cat({torch::cos(args), torch::sin(args)}, 1);
  if (dim % 2 == 1) out = torch::cat({out, torch::zeros({out.size(0), 1}, opts)}, 1);
  return out;
}

int64_t EstimateForwardFlops(const NetworkConfig& c, int frames, int height, int width,
                             int tokens) {
  const int64_t d = c.width, dt = c.text_width, p = c.patch;
  const int64_t n = (height / p) * (width / p);
  const int64_t T = frames, L = tokens + 1;
  const int64_t patch_dim = c.channels * p * p;
  const int64_t tok = T * n;
  int64_t macs = 0;
  macs += 2 * tok * patch_dim * d;                     // patch embedding + output projection
  const int64_t per_token = 4 * d * d + 2 * n * d      // spatial attention
                            + 4 * d * d + 2 * T * d    // temporal attention
                            + 2 * d * d + 2 * L * d    // cross-attention (q, out, scores)
                            + 2 * c.mlp_ratio * d * d  // MLP
      ;
  macs += c.depth * (tok * per_token + L * 2 * dt * d);  // + caption k/v per block
  macs += c.text_layers * L * (4 * dt * dt + 2 * L * dt + 2 * c.mlp_ratio * dt * dt);
  const int64_t r = c.refine_channels;
  macs += int64_t{T} * height * width * 9 * (2 * c.channels * r + r * c.channels);
  return 2 * macs;
}

namespace network_internal {

// ---------------------------------------------------------------------------------------------
// Building blocks

AttentionImpl::AttentionImpl(int dim, int heads, int kv_dim)
    : dim_(dim), heads_(heads), cross_(kv_dim > 0) {
  if (cross_) {
    q_ = register_module("q", MakeLinear(dim, dim));
    kv_ = register_module("kv", MakeLinear(kv_dim, 2 * dim));
    InitLinear(q_);
    InitLinear(kv_);
  } else {
    qkv_ = register_module("qkv", MakeLinear(dim, 3 * dim));
    InitLinear(qkv_);
  }
  out = register_module("out", MakeLinear(dim, dim));
  InitLinear(out);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                     const torch::Tensor& key_bias) {
  if (cross_) return Attend(x, KeysValues(context), key_bias);
  const torch::Tensor fused = qkv_(x);
  if (!key_bias.defined() && CanUseCpuSelfAttention(fused)) {
    return out(CpuSelfAttention(fused, heads_));
  }
  const auto qkv = fused.chunk(3, -1);
  return out(MultiHead(qkv[0], qkv[1], qkv[2], heads_, key_bias));
}

std::pair<torch::Tensor, torch::Tensor> AttentionImpl::KeysValues(const torch::Tensor& context) {
  TORCH_CHECK(cross_, "KeysValues: not a cross-attention");
  const auto kv = kv_(context).chunk(2, -1);
  return {kv[0], kv[1]};
}

torch::Tensor AttentionImpl::Attend(const torch::Tensor& x,
                                    const std::pair<torch::Tensor, torch::Tensor>& kv,
                                    const torch::Tensor& key_bias) {
  TORCH_CHECK(cross_, "Attend: not a cross-attention");
  return out(MultiHead(q_(x), kv.first, kv.second, heads_, key_bias));
}

MlpImpl::MlpImpl(int dim, int hidden) {
  fc1 = register_module("fc1", MakeLinear(dim, hidden));
  fc2 = register_module("fc2", MakeLinear(hidden, dim));
  InitLinear(fc1);
  InitLinear(fc2);
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return fc2(torch::gelu(fc1(x), "tanh")); }

TextLayerImpl::TextLayerImpl(int dim, int heads) {
  norm1_ = register_module("norm1", MakeNorm(dim, true));
  attn_ = register_module("attn", Attention(dim, heads));
  norm2_ = register_module("norm2", MakeNorm(dim, true));
  mlp_ = register_module("mlp", Mlp(dim, 4 * dim));
}

torch::Tensor TextLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& key_bias) {
  torch::Tensor h = x + attn_(norm1_(x), torch::Tensor(), key_bias);
  return h + mlp_(norm2_(h));
}

VideoBlockImpl::VideoBlockImpl(int dim, int heads, int mlp_hidden, int text_dim) {
  modulation_ = register_module("modulation", MakeLinear(dim, 9 * dim));
  ZeroLinear(modulation_);  // adaLN-Zero: every gated branch starts closed
  norm_s_ = register_module("norm_s", MakeNorm(dim, false));
  spatial_ = register_module("spatial", Attention(dim, heads));
  norm_t_ = register_module("norm_t", MakeNorm(dim, false));
  temporal_ = register_module("temporal", Attention(dim, heads));
  norm_c_ = register_module("norm_c", MakeNorm(dim, true));
  cross_ = register_module("cross", Attention(dim, heads, text_dim));
  ZeroLinear(cross_->out);  // the ungated cross branch also starts at zero
  norm_m_ = register_module("norm_m", MakeNorm(dim, false));
  mlp_ = register_module("mlp", Mlp(dim, mlp_hidden));
}

std::pair<torch::Tensor, torch::Tensor> VideoBlockImpl::CaptionKeysValues(
    const torch::Tensor& text) {
  return cross_->KeysValues(text);
}

torch::Tensor VideoBlockImpl::forward(const torch::Tensor& h_in, const torch::Tensor& cond,
                                      const std::pair<torch::Tensor, torch::Tensor>& caption_kv,
                                      const torch::Tensor& text_bias) {
  const int64_t b = h_in.size(0), T = h_in.size(1), n = h_in.size(2), d = h_in.size(3);
  // Chunks 0-8: shift, scale and gate of the spatial, temporal and MLP branches.
  const Modulation m(modulation_(cond), h_in);
  torch::Tensor h = h_in;
  // Spatial attention: frames folded into the batch.
  torch::Tensor x = m.NormModulate(norm_s_, h, 0, 1).reshape({b * T, n, d});
  h = m.GatedResidual(h, 2, spatial_(x).view({b, T, n, d}));
  // Temporal attention: patch positions folded into the batch.
  x = m.NormModulate(norm_t_, h, 3, 4).permute({0, 2, 1, 3}).reshape({b * n, T, d});
  h = m.GatedResidual(h, 5, temporal_(x).view({b, n, T, d}).permute({0, 2, 1, 3}));
  // Cross-attention to the caption.
  x = norm_c_(h).reshape({b, T * n, d});
  h = h + cross_->Attend(x, caption_kv, text_bias).view({b, T, n, d});
  // MLP.
  return m.GatedResidual(h, 8, mlp_(m.NormModulate(norm_m_, h, 6, 7)));
}

}  // namespace network_internal

// ---------------------------------------------------------------------------------------------
// TpdiffNet

TpdiffNetImpl::TpdiffNetImpl(const NetworkConfig& config) : config_(config) {
  TORCH_CHECK(config.Validate().ok(), "invalid network config: ", config.Validate().ToString());
  const int d = config.width, dt = config.text_width, p = config.patch;
  const int patch_dim = config.channels * p * p;
  patch_embed_ = register_module("patch_embed", MakeLinear(patch_dim, d));
  InitLinear(patch_embed_);
  {
    // Learned spatial positions, initialised with 2-D sinusoids (rows in the first half of
    // the features, columns in the second) so the grid geometry is known from step 0.
    const int gh = config.max_height / p, gw = config.max_width / p;
    const torch::Tensor rows = SinusoidalFeatures(torch::arange(gh), d / 2, 100.0);
    const torch::Tensor cols = SinusoidalFeatures(torch::arange(gw), d - d / 2, 100.0);
    const torch::Tensor grid = torch::cat({rows.unsqueeze(1).expand({gh, gw, d / 2}),
                                           cols.unsqueeze(0).expand({gh, gw, d - d / 2})},
                                          2)
                                   .reshape({gh * gw, d});
    spatial_pos_ = register_parameter("spatial_pos", grid.clone());
  }
  time_fc1_ = register_module("time_fc1", MakeLinear(d, d));
  time_fc2_ = register_module("time_fc2", MakeLinear(d, d));
  InitLinear(time_fc1_);
  InitLinear(time_fc2_);
  stage_embed_ =
      register_module("stage_embed", nn::Embedding(nn::EmbeddingOptions(config.max_stages + 1, d)));
  token_embed_ =
      register_module("token_embed", nn::Embedding(nn::EmbeddingOptions(config.vocab_size, dt)));
  {
    torch::NoGradGuard no_grad;
    stage_embed_->weight.normal_(0, 0.02);
    token_embed_->weight.normal_(0, 0.02);
  }
  text_pos_ = register_parameter("text_pos", torch::randn({config.max_tokens + 1, dt}) * 0.02);
  null_token_ = register_parameter("null_token", torch::randn({dt}) * 0.02);
  text_layers_ = register_module("text_layers", nn::ModuleList());
  for (int i = 0; i < config.text_layers; ++i) {
    text_layers_->push_back(network_internal::TextLayer(dt, config.text_heads));
  }
  text_norm_ = register_module("text_norm", MakeNorm(dt, true));
  text_pool_ = register_module("text_pool", MakeLinear(dt, d));
  InitLinear(text_pool_);
  blocks_ = register_module("blocks", nn::ModuleList());
  for (int i = 0; i < config.depth; ++i) {
    blocks_->push_back(network_internal::VideoBlock(d, config.heads, config.mlp_ratio * d, dt));
  }
  final_norm_ = register_module("final_norm", MakeNorm(d, false));
  final_modulation_ = register_module("final_modulation", MakeLinear(d, 2 * d));
  ZeroLinear(final_modulation_);
  final_proj_ = register_module("final_proj", MakeLinear(d, patch_dim));
  ZeroLinear(final_proj_);
  input_skip_ = register_module("input_skip", MakeLinear(d, config.channels));
  ZeroLinear(input_skip_);
  if (config.refine_channels > 0) {
    const int r = config.refine_channels;
    refine_in_ = register_module(
        "refine_in", nn::Conv2d(nn::Conv2dOptions(2 * config.channels, r, 3).padding(1)));
    refine_out_ = register_module(
        "refine_out", nn::Conv2d(nn::Conv2dOptions(r, config.channels, 3).padding(1)));
    torch::NoGradGuard no_grad;
    refine_out_->weight.zero_();
    refine_out_->bias.zero_();
  }
  if (config.word_conditioning > 0) {
    word_cond_ = register_module("word_cond",
                                 nn::Embedding(nn::EmbeddingOptions(config.vocab_size, d)));
    torch::NoGradGuard no_grad;
    word_cond_->weight.zero_();
  }
  if (config.word_layout_frames > 0) {
    const int grid = (config.max_height / p) * (config.max_width / p);
    word_layout_ = register_parameter(
        "word_layout", torch::zeros({config.vocab_size, config.word_layout_frames, grid, d}));
  }
}

std::pair<torch::Tensor, torch::Tensor> TpdiffNetImpl::EncodeText(const torch::Tensor& tokens) {
  const int64_t b = tokens.size(0), len = tokens.size(1);
  TORCH_CHECK(len <= config_.max_tokens, "tokens: ", len, " exceeds max_tokens ",
              config_.max_tokens);
  const int dt = config_.text_width;
  const torch::Tensor emb = token_embed_(tokens);
  const torch::Tensor null = null_token_.view({1, 1, dt}).expand({b, 1, dt});
  torch::Tensor seq = torch::cat({null, emb}, 1) + text_pos_.slice(0, 0, len + 1).unsqueeze(0);
  const torch::Tensor valid =
      torch::cat({torch::ones({b, 1}, tokens.options().dtype(torch::kBool)), tokens.ne(0)}, 1);
  const torch::Tensor bias =
      torch::zeros({b, len + 1}, seq.options()).masked_fill(valid.logical_not(), kMaskedBias);
  for (const auto& layer : *text_layers_) {
    seq = layer->as<network_internal::TextLayer>()->forward(seq, bias);
  }
  return {text_norm_(seq), bias};
}

torch::Tensor TpdiffNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                     const torch::Tensor& stage, const torch::Tensor& tokens) {
  TORCH_CHECK(x.dim() == 5, "x must be [B, C, T, H, W], got ", x.sizes());
  return ForwardPrepared(x, t, Prepare(x.sizes(), stage.to(x.device()), tokens.to(x.device())));
}

StepInvariants TpdiffNetImpl::Prepare(torch::IntArrayRef video_shape, const torch::Tensor& stage,
                                      const torch::Tensor& tokens) {
  TORCH_CHECK(video_shape.size() == 5, "x must be [B, C, T, H, W], got ", video_shape);
  const int64_t b = video_shape[0], c = video_shape[1], T = video_shape[2], H = video_shape[3],
                W = video_shape[4];
  const int64_t p = config_.patch, hp = H / p, wp = W / p, n = hp * wp, d = config_.width;
  TORCH_CHECK(c == config_.channels && H % p == 0 && W % p == 0 && H <= config_.max_height &&
                  W <= config_.max_width,
              "x shape ", video_shape, " does not fit the network config");
  TORCH_CHECK(stage.numel() == b, "stage must have one entry per clip");
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(0) == b, "tokens must be [B, L]");
  // All clips of a batch share one stage (the sampler and trainer both batch per stage).
  const int k = static_cast<int>(stage.reshape({-1})[0].item<int64_t>());
  TORCH_CHECK(k >= 1 && k <= config_.max_stages, "stage ", k, " outside 1..", config_.max_stages);
  const torch::Device device = tokens.device();

  StepInvariants out;
  out.stage = k;
  out.video_shape = video_shape.vec();
  const torch::Tensor spatial =
      spatial_pos_.view({config_.max_height / p, config_.max_width / p, d})
          .slice(0, 0, hp)
          .slice(1, 0, wp)
          .reshape({1, 1, n, d});
  const torch::Tensor positions = TemporalPositions(k, static_cast<int>(T));  // on the CPU
  const torch::Tensor temporal =
      SinusoidalFeatures(positions.to(device), d, 100.0)
          .to(spatial_pos_.scalar_type())
          .view({1, T, 1, d});
  out.token_offset = spatial + temporal;
  if (word_layout_.defined()) {
    const int64_t last = positions[T - 1].item<int64_t>();
    TORCH_CHECK(last < config_.word_layout_frames, "stage ", k, " with ", T,
                " frames reaches full-rate frame ", last, "; the word layout covers ",
                config_.word_layout_frames);
    const int64_t vocab = config_.vocab_size;
    const torch::Tensor table =
        word_layout_.index_select(1, positions.to(device))
            .view({vocab, T, config_.max_height / p, config_.max_width / p, d})
            .slice(2, 0, hp)
            .slice(3, 0, wp)
            .reshape({vocab, T * n * d});
    // Word counts per caption (padding id 0 excluded) times the per-word tables.
    const torch::Tensor words = tokens.to(torch::kLong);
    const torch::Tensor counts =
        torch::zeros({b, vocab}, table.options())
            .scatter_add_(1, words, words.ne(0).to(table.scalar_type()));
    out.token_offset = out.token_offset + torch::matmul(counts, table).view({b, T, n, d});
  }

  std::tie(out.text, out.text_bias) = EncodeText(tokens);
  const torch::Tensor valid = (out.text_bias == 0).to(out.text.scalar_type()).unsqueeze(-1);
  const torch::Tensor pooled = (out.text * valid).sum(1) / valid.sum(1);
  out.caption_cond = stage_embed_(stage.reshape({-1}).to(torch::kLong)) + text_pool_(pooled);
  if (word_cond_) {
    const torch::Tensor words = tokens.to(torch::kLong);
    out.caption_cond =
        out.caption_cond +
        (word_cond_(words) * words.ne(0).unsqueeze(-1).to(out.caption_cond.scalar_type())).sum(1);
  }
  for (const auto& block : *blocks_) {
    out.caption_kv.push_back(
        block->as<network_internal::VideoBlock>()->CaptionKeysValues(out.text));
  }
  return out;
}

torch::Tensor TpdiffNetImpl::ForwardPrepared(const torch::Tensor& x, const torch::Tensor& t,
                                             const StepInvariants& prepared) {
  TORCH_CHECK(x.sizes() == torch::IntArrayRef(prepared.video_shape), "x shape ", x.sizes(),
              " differs from the prepared ", torch::IntArrayRef(prepared.video_shape));
  const int64_t b = x.size(0), c = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  const int64_t p = config_.patch, hp = H / p, wp = W / p, n = hp * wp, d = config_.width;

  // Patchify: [B, C, T, H, W] -> [B, T, N, C*p*p].
  torch::Tensor h = x.reshape({b, c, T, hp, p, wp, p})
                        .permute({0, 2, 3, 5, 1, 4, 6})
                        .reshape({b, T, n, c * p * p});
  h = patch_embed_(h) + prepared.token_offset;

  const torch::Tensor cond = torch::silu(
      time_fc2_(torch::silu(time_fc1_(
          SinusoidalFeatures(t.reshape({-1}).to(torch::kFloat) * 1000.0, d, 10000.0)))) +
      prepared.caption_cond);

  for (size_t i = 0; i < blocks_->size(); ++i) {
    h = (*blocks_)[i]->as<network_internal::VideoBlock>()->forward(h, cond, prepared.caption_kv[i],
                                                                prepared.text_bias);
  }
  h = final_proj_(Modulation(final_modulation_(cond), h).NormModulate(final_norm_, h, 0, 1));
  const torch::Tensor skip = input_skip_(cond).view({b, c, 1, 1, 1});
  // Unpatchify to frames: [B, T, N, C*p*p] -> [B*T, C, H, W].
  torch::Tensor frames = h.reshape({b, T, hp, wp, c, p, p})
                             .permute({0, 1, 4, 2, 5, 3, 6})
                             .reshape({b * T, c, H, W});
  if (refine_in_) {
    // Frames are folded into the batch: Conv2d is fast where Conv3d is not (cpu-notes).
    // Channels-last input: LibTorch's oneDNN convolution then skips its reorders to and from
    // blocked layouts, which at these few channels cost more than the arithmetic (1 thread,
    // 8 frames: 6->32 channels 764 -> 210 us, 32->3 701 -> 511 us).
    const torch::Tensor x_frames = x.transpose(1, 2).reshape({b * T, c, H, W});
    const torch::Tensor refine_input =
        torch::cat({frames, x_frames}, 1).contiguous(at::MemoryFormat::ChannelsLast);
    frames = (frames + refine_out_(torch::silu(refine_in_(refine_input)))).contiguous();
  }
  return (skip * x + frames.view({b, T, c, H, W}).transpose(1, 2)).contiguous();
}

int64_t TpdiffNetImpl::ParameterCount() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel();
  return total;
}

NamedTensors NetworkState(const TpdiffNetImpl& net, const std::string& prefix) {
  NamedTensors out;
  for (const auto& item : net.named_parameters(/*recurse=*/true)) {
    out.emplace_back(prefix + item.key(), item.value());
  }
  return out;
}

absl::Status LoadNetworkState(TpdiffNetImpl& net,
                              const std::map<std::string, torch::Tensor>& tensors,
                              const std::string& prefix, std::vector<std::string>* missing) {
  torch::NoGradGuard no_grad;
  for (auto& item : net.named_parameters(/*recurse=*/true)) {
    const std::string name = prefix + item.key();
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (missing != nullptr) {
        missing->push_back(item.key());
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat("weights: tensor \"", name, "\" missing"));
    }
    if (it->second.sizes() != item.value().sizes()) {
      std::ostringstream want, got;
      want << item.value().sizes();
      got << it->second.sizes();
      return absl::InvalidArgumentError(absl::StrCat("weights: tensor \"", name, "\" has shape ",
                                                     got.str(), ", the network expects ",
                                                     want.str()));
    }
    if (!it->second.is_floating_point()) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights: tensor \"", name, "\" is not floating point"));
    }
    absl::Status copied = core::TorchCall("weights: copy", [&] {
                            item.value().copy_(it->second);
                            return 0;
                          }).status();
    if (!copied.ok()) return copied;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Denoiser adapter

NetworkDenoiser::NetworkDenoiser(TpdiffNet net)
    : net_(std::move(net)), parameters_(net_->parameters()) {}

absl::StatusOr<torch::Tensor> NetworkDenoiser::Predict(const core::DenoiserInput& in) {
  const NetworkConfig& c = net_->config();
  if (!in.x.defined() || in.x.dim() != 5) {
    return absl::InvalidArgumentError("x: must be [B, C, T, H, W]");
  }
  const int64_t b = in.x.size(0);
  if (in.x.size(1) != c.channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("x: ", in.x.size(1), " channels, the model has ", c.channels));
  }
  for (int dim : {3, 4}) {
    const int64_t v = in.x.size(dim);
    const int limit = dim == 3 ? c.max_height : c.max_width;
    const char* name = dim == 3 ? "height" : "width";
    if (v % c.patch != 0 || v > limit || v == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": ", v, " must be a positive multiple of ", c.patch, " and at most ", limit));
    }
  }
  if (!in.t.defined() || in.t.numel() != b) {
    return absl::InvalidArgumentError("t: must have one entry per clip");
  }
  if (!in.stage.defined() || in.stage.numel() != b) {
    return absl::InvalidArgumentError("stage: must have one entry per clip");
  }
  if (!in.tokens.defined() || in.tokens.dim() != 2 || in.tokens.size(0) != b) {
    return absl::InvalidArgumentError("tokens: must be [B, L]");
  }
  if (in.tokens.size(1) > c.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokens: ", in.tokens.size(1), " exceeds the model's maximum of ", c.max_tokens));
  }
  // A call in the same stage as the last (same caption, stage, shape, device and weights)
  // reuses its validated inputs and caption state; anything else is checked and prepared.
  const void* weights_data = parameters_.empty() ? nullptr : parameters_[0].data_ptr();
  int64_t weights_version = 0;
  for (const torch::Tensor& t : parameters_) weights_version += t._version();
  auto cached = core::TorchCall("network input check", [&] {
    if (!prepared_.has_value()) return false;
    const Prepared& p = *prepared_;
    if (p.device != in.x.device() ||
        in.x.sizes() != torch::IntArrayRef(p.invariants.video_shape) ||
        p.tokens.sizes() != in.tokens.sizes() || p.stage.sizes() != in.stage.sizes() ||
        p.weights_data != weights_data || p.weights_version != weights_version) {
      return false;
    }
    return torch::equal(p.stage, in.stage.to(p.device, torch::kLong)) &&
           torch::equal(p.tokens, in.tokens.to(p.device, torch::kLong));
  });
  if (!cached.ok()) return cached.status();
  if (!*cached) {
    prepared_.reset();  // a failed check or Prepare must not leave the old state current
    // Value checks read the tensors (a device sync on GPU), once per stage.
    auto ranges = core::TorchCall("network input check", [&] {
      const torch::Tensor s = in.stage.to(torch::kLong);
      std::array<int64_t, 4> r = {s.min().item<int64_t>(), s.max().item<int64_t>(), 0, 0};
      if (in.tokens.numel() > 0) {
        const torch::Tensor tk = in.tokens.to(torch::kLong);
        r[2] = tk.min().item<int64_t>();
        r[3] = tk.max().item<int64_t>();
      }
      return r;
    });
    if (!ranges.ok()) return ranges.status();
    const auto& r = *ranges;
    if (r[0] != r[1] || r[0] < 1 || r[0] > c.max_stages) {
      return absl::InvalidArgumentError(
          absl::StrCat("stage: values must be equal within a batch and in 1..", c.max_stages));
    }
    if (r[2] < 0 || r[3] >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens: ids must be in [0, ", c.vocab_size, ")"));
    }
    if (c.word_layout_frames > 0) {
      const int64_t last = (in.x.size(2) - 1) * (int64_t{1} << (r[0] - 1));
      if (last >= c.word_layout_frames) {
        return absl::InvalidArgumentError(absl::StrCat(
            "x: ", in.x.size(2), " frames at stage ", r[0], " reach full-rate frame ", last,
            "; the model covers ", c.word_layout_frames, " frames"));
      }
    }
    auto prepared = core::TorchCall("network forward", [&] {
      torch::NoGradGuard no_grad;
      const torch::Device device = in.x.device();
      Prepared fresh;
      fresh.device = device;
      // Copies: the caller may rewrite its tensors for the next call.
      fresh.tokens = in.tokens.to(device, torch::kLong).clone();
      fresh.stage = in.stage.to(device, torch::kLong).clone();
      fresh.weights_data = weights_data;
      fresh.weights_version = weights_version;
      fresh.invariants = net_->Prepare(in.x.sizes(), fresh.stage, fresh.tokens);
      return fresh;
    });
    if (!prepared.ok()) return prepared.status();
    prepared_ = *std::move(prepared);
  }
  return core::TorchCall("network forward", [&] {
    torch::NoGradGuard no_grad;
    return net_->ForwardPrepared(in.x.to(torch::kFloat), in.t.to(in.x.device(), torch::kFloat),
                                 prepared_->invariants);
  });
}

}  // namespace tpdiff::model
