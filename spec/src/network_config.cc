#include "tpdiff/spec/network_config.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tpdiff::spec {

absl::Status NetworkConfig::Validate() const {
  auto bad = [](const char* field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("network.", field, ": ", why));
  };
  auto range = [&](const char* field, int v, int lo, int hi) -> absl::Status {
    if (v < lo || v > hi) {
      return bad(field, absl::StrCat(v, " outside [", lo, ", ", hi, "]"));
    }
    return absl::OkStatus();
  };
  for (const absl::Status& s :
       {range("channels", channels, 1, 16), range("patch", patch, 1, 32),
        range("max_height", max_height, 1, 4096), range("max_width", max_width, 1, 4096),
        range("width", width, 8, 4096), range("depth", depth, 1, 64), range("heads", heads, 1, 64),
        range("mlp_ratio", mlp_ratio, 1, 16), range("vocab_size", vocab_size, 1, 1 << 20),
        range("max_tokens", max_tokens, 1, 1024), range("text_width", text_width, 8, 4096),
        range("text_layers", text_layers, 0, 32), range("text_heads", text_heads, 1, 64),
        range("max_stages", max_stages, 1, 16), range("refine_channels", refine_channels, 0, 256),
        range("word_conditioning", word_conditioning, 0, 1),
        range("word_layout_frames", word_layout_frames, 0, 64)}) {
    if (!s.ok()) return s;
  }
  if (width % heads != 0)
    return bad("width", absl::StrCat(width, " not divisible by heads ", heads));
  if (width % 2 != 0) return bad("width", absl::StrCat(width, " must be even"));
  if (text_width % text_heads != 0) {
    return bad("text_width", absl::StrCat(text_width, " not divisible by text_heads ", text_heads));
  }
  if (max_height % patch != 0) {
    return bad("max_height", absl::StrCat(max_height, " not divisible by patch ", patch));
  }
  if (max_width % patch != 0) {
    return bad("max_width", absl::StrCat(max_width, " not divisible by patch ", patch));
  }
  return absl::OkStatus();
}

std::string NetworkConfig::ToJson() const {
  nlohmann::json j = {
      {"channels", channels},     {"patch", patch},           {"max_height", max_height},
      {"max_width", max_width},   {"width", width},           {"depth", depth},
      {"heads", heads},           {"mlp_ratio", mlp_ratio},   {"vocab_size", vocab_size},
      {"max_tokens", max_tokens}, {"text_width", text_width}, {"text_layers", text_layers},
      {"text_heads", text_heads}, {"max_stages", max_stages}};
  // Absent when 0 so packages without refinement keep their exact manifest.
  if (refine_channels > 0) j["refine_channels"] = refine_channels;
  if (word_conditioning > 0) j["word_conditioning"] = word_conditioning;
  if (word_layout_frames > 0) j["word_layout_frames"] = word_layout_frames;
  return j.dump();
}

absl::StatusOr<NetworkConfig> NetworkConfig::FromJson(const std::string& json_text) {
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("network: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("network: must be a JSON object");
  NetworkConfig c;
  const std::pair<const char*, int*> fields[] = {
      {"channels", &c.channels},     {"patch", &c.patch},           {"max_height", &c.max_height},
      {"max_width", &c.max_width},   {"width", &c.width},           {"depth", &c.depth},
      {"heads", &c.heads},           {"mlp_ratio", &c.mlp_ratio},   {"vocab_size", &c.vocab_size},
      {"max_tokens", &c.max_tokens}, {"text_width", &c.text_width}, {"text_layers", &c.text_layers},
      {"text_heads", &c.text_heads}, {"max_stages", &c.max_stages},
      {"refine_channels", &c.refine_channels}, {"word_conditioning", &c.word_conditioning},
      {"word_layout_frames", &c.word_layout_frames}};
  for (auto it = j.begin(); it != j.end(); ++it) {
    int* target = nullptr;
    for (const auto& [name, ptr] : fields) {
      if (it.key() == name) target = ptr;
    }
    if (target == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("network.", it.key(), ": unknown field"));
    }
    if (!it.value().is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat("network.", it.key(), ": must be an integer"));
    }
    const int64_t v = it.value().get<int64_t>();
    if (v < -(1LL << 30) || v > (1LL << 30)) {
      return absl::InvalidArgumentError(
          absl::StrCat("network.", it.key(), ": ", v, " out of range"));
    }
    *target = static_cast<int>(v);
  }
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  return c;
}

}  // namespace tpdiff::spec
