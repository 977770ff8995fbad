#include "tpdiff/spec/model_info.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tpdiff::spec {

tpdiff::v1::ModelInfo ToModelInfo(const ModelManifest& m, const Tokenizer& tokenizer) {
  tpdiff::v1::ModelInfo info;
  info.set_name(m.name);
  info.set_kind(m.kind);
  info.set_description(m.description);
  info.set_parameterization(std::string(ParameterizationName(m.parameterization)));
  info.set_frames(m.frames);
  info.set_height(m.height);
  info.set_width(m.width);
  info.set_channels(m.channels);
  info.set_fps(m.fps);
  for (int steps : m.default_stage_steps) info.add_default_stage_steps(steps);
  info.set_default_guidance_scale(static_cast<float>(m.default_guidance_scale));
  info.set_tokenizer_kind(std::string(TokenizerKindName(tokenizer.kind())));
  info.set_max_tokens(static_cast<uint32_t>(tokenizer.max_tokens()));
  if (tokenizer.kind() == TokenizerKind::kWords) {
    for (const std::string& word : tokenizer.words()) info.add_vocabulary(word);
  } else {
    info.set_tokenizer_model(tokenizer.sentencepiece_model());
  }
  if (m.is_latent()) {
    const VaeConfig& vae = m.latent.vae;
    tpdiff::v1::LatentInfo* latent = info.mutable_latent();
    latent->set_latent_channels(static_cast<uint32_t>(vae.latent_channels));
    latent->set_temporal_factor(static_cast<uint32_t>(vae.temporal_factor));
    latent->set_spatial_factor(static_cast<uint32_t>(vae.spatial_factor));
    latent->set_causal_first_frame(vae.causal_first_frame);
    latent->set_prediction(std::string(PredictionName(m.latent.schedule.prediction)));
  }
  return info;
}

absl::StatusOr<ModelSpec> ModelSpecFromInfo(const tpdiff::v1::ModelInfo& info) {
  auto invalid = [](absl::string_view field, absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat("model_info.", field, ": ", problem));
  };
  if (info.name().empty()) return invalid("name", "required");
  ModelManifest m;
  m.name = info.name();
  m.kind = info.kind();
  m.description = info.description();
  absl::StatusOr<Parameterization> p = ParseParameterization(info.parameterization());
  if (!p.ok()) {
    return invalid("parameterization",
                   absl::StrCat("\"", info.parameterization(), "\" is not flow_matching or vp_eps"));
  }
  m.parameterization = *p;
  // ModelInfo's fields are uint32; the manifest's are int.
  constexpr uint32_t kMaxSide = 1u << 20;
  if (info.frames() < 1 || info.frames() > kMaxSide || info.height() < 1 ||
      info.height() > kMaxSide || info.width() < 1 || info.width() > kMaxSide) {
    return invalid("frames", absl::StrCat("frames, height and width must be in 1..", kMaxSide));
  }
  m.frames = static_cast<int>(info.frames());
  m.height = static_cast<int>(info.height());
  m.width = static_cast<int>(info.width());
  m.channels = static_cast<int>(std::min(info.channels(), kMaxSide));
  m.fps = static_cast<int>(std::min(info.fps(), kMaxSide));
  if (info.default_stage_steps().empty()) return invalid("default_stage_steps", "required");
  for (uint32_t steps : info.default_stage_steps()) {
    m.default_stage_steps.push_back(static_cast<int>(std::min(steps, kMaxSide)));
  }
  m.stages = static_cast<int>(m.default_stage_steps.size());
  m.default_guidance_scale = info.default_guidance_scale();
  if (m.is_latent()) {
    const tpdiff::v1::LatentInfo& l = info.latent();
    if (l.latent_channels() < 1 || l.latent_channels() > kMaxSide || l.temporal_factor() < 1 ||
        l.temporal_factor() > kMaxSide || l.spatial_factor() < 1 ||
        l.spatial_factor() > kMaxSide) {
      return invalid("latent", absl::StrCat("latent_channels, temporal_factor and spatial_factor "
                                            "must be in 1..", kMaxSide));
    }
    m.channels = 3;
    m.latent.vae.latent_channels = static_cast<int>(l.latent_channels());
    m.latent.vae.temporal_factor = static_cast<int>(l.temporal_factor());
    m.latent.vae.spatial_factor = static_cast<int>(l.spatial_factor());
    m.latent.vae.causal_first_frame = l.causal_first_frame();
    m.latent.schedule.type = m.parameterization;
  }
  absl::StatusOr<TokenizerKind> kind =
      info.tokenizer_kind().empty()
          ? absl::StatusOr<TokenizerKind>(TokenizerKind::kWords)
          : ParseTokenizerKind(info.tokenizer_kind(), "model_info.tokenizer_kind");
  if (!kind.ok()) return kind.status();
  if (info.max_tokens() > static_cast<uint32_t>(Tokenizer::kMaxModelTokens)) {
    return invalid("max_tokens", absl::StrCat(info.max_tokens(), " exceeds the maximum of ",
                                              Tokenizer::kMaxModelTokens));
  }
  const int max_tokens =
      info.max_tokens() == 0 ? Tokenizer::kMaxTokens : static_cast<int>(info.max_tokens());
  m.latent.tokenizer.kind = *kind;
  m.latent.tokenizer.max_tokens = max_tokens;
  absl::StatusOr<Tokenizer> tokenizer;
  if (*kind == TokenizerKind::kWords) {
    std::vector<std::string> words(info.vocabulary().begin(), info.vocabulary().end());
    tokenizer = Tokenizer::FromWords(std::move(words), max_tokens);
    if (!tokenizer.ok()) return invalid("vocabulary", tokenizer.status().message());
  } else {
    tokenizer = Tokenizer::FromSentencePiece(info.tokenizer_model(), max_tokens);
    if (!tokenizer.ok()) return invalid("tokenizer_model", tokenizer.status().message());
  }
  return ModelSpec{std::move(m), *std::move(tokenizer)};
}

}  // namespace tpdiff::spec
