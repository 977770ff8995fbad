#include "tpdiff/spec/manifest.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tpdiff/spec/files.h"
#include "tpdiff/spec/limits.h"
#include "tpdiff/spec/network_config.h"
#include "tpdiff/spec/stage_plan.h"
#include "tpdiff/spec/status_macros.h"

namespace tpdiff::spec {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Every field model.json may have. Anything else is rejected: a typo must not silently fall
// back to a default.
constexpr const char* kKnownFields[] = {
    "name",       "kind",     "description",         "parameterization",
    "frames",     "height",   "width",               "channels",
    "fps",        "stages",   "boundaries",          "default_stage_steps",
    "default_guidance_scale", "weights_file",        "vocabulary_file",
    "network"};
constexpr const char* kKnownLatentFields[] = {
    "name",         "kind",       "description",  "frames",        "height",
    "width",        "fps",        "stages",       "boundaries",    "default_stage_steps",
    "default_guidance_scale",     "schedule",     "tokenizer",     "text_encoder",
    "denoiser",     "vae"};
constexpr const char* kScheduleFields[] = {"type",       "shift",         "timestep_scale",
                                           "prediction", "beta_schedule", "beta_start",
                                           "beta_end",   "num_train_timesteps"};
constexpr const char* kTokenizerFields[] = {"kind", "file", "max_tokens"};
constexpr const char* kTextEncoderFields[] = {"file", "dim", "dtype"};
constexpr const char* kDenoiserFields[] = {"file", "dtype"};
constexpr const char* kVaeFields[] = {"file",           "latent_channels",    "temporal_factor",
                                      "spatial_factor", "causal_first_frame", "scale",
                                      "shift",          "dtype"};
constexpr int kMaxLatentChannels = 1024;
constexpr int kMaxTemporalFactor = 16;
constexpr int kMaxSpatialFactor = 64;
constexpr int kMaxTextDim = 65536;

absl::Status Field(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Typed field readers: each error names the field, `prefix` (e.g. "vae.") included.
absl::Status GetString(const json& j, const char* key, bool required, std::string* out,
                       absl::string_view prefix = "") {
  const std::string name = absl::StrCat(prefix, key);
  if (!j.contains(key)) return required ? Field(name, "missing") : absl::OkStatus();
  if (!j[key].is_string()) return Field(name, "must be a string");
  *out = j[key].get<std::string>();
  return absl::OkStatus();
}

absl::Status GetInt(const json& j, const char* key, bool required, int lo, int hi, int* out,
                    absl::string_view prefix = "") {
  const std::string name = absl::StrCat(prefix, key);
  if (!j.contains(key)) return required ? Field(name, "missing") : absl::OkStatus();
  if (!j[key].is_number_integer()) return Field(name, "must be an integer");
  // An unsigned value above INT64_MAX would wrap to a negative int64_t.
  if (j[key].is_number_unsigned() && j[key].get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return Field(name, absl::StrCat(j[key].get<uint64_t>(), " outside [", lo, ", ", hi, "]"));
  }
  const int64_t v = j[key].get<int64_t>();
  if (v < lo || v > hi) return Field(name, absl::StrCat(v, " outside [", lo, ", ", hi, "]"));
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

absl::Status GetDouble(const json& j, const char* key, bool required, double* out,
                       absl::string_view prefix = "") {
  const std::string name = absl::StrCat(prefix, key);
  if (!j.contains(key)) return required ? Field(name, "missing") : absl::OkStatus();
  if (!j[key].is_number()) return Field(name, "must be a number");
  *out = j[key].get<double>();
  if (!std::isfinite(*out)) return Field(name, "must be finite");
  return absl::OkStatus();
}

absl::Status GetBool(const json& j, const char* key, bool required, bool* out,
                     absl::string_view prefix = "") {
  const std::string name = absl::StrCat(prefix, key);
  if (!j.contains(key)) return required ? Field(name, "missing") : absl::OkStatus();
  if (!j[key].is_boolean()) return Field(name, "must be true or false");
  *out = j[key].get<bool>();
  return absl::OkStatus();
}

// Rejects keys of `j` outside `known`, listing the known ones (a typo must not silently
// fall back to a default).
template <size_t N>
absl::Status CheckKnownFields(const json& j, const char* const (&known)[N],
                              absl::string_view prefix = "") {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool found = false;
    for (const char* k : known) found = found || it.key() == k;
    if (!found) {
      return Field(absl::StrCat(prefix, it.key()),
                   absl::StrCat("unknown field; known fields: ", absl::StrJoin(known, ", ")));
    }
  }
  return absl::OkStatus();
}

// A sub-object such as "vae": required, an object, only known keys.
template <size_t N>
absl::Status GetObject(const json& j, const char* key, const char* const (&known)[N],
                       const json** out) {
  if (!j.contains(key)) return Field(key, "missing (required for kind \"latent\")");
  if (!j[key].is_object()) return Field(key, "must be an object");
  *out = &j[key];
  return CheckKnownFields(j[key], known, absl::StrCat(key, "."));
}

// Package-relative file names only: a manifest must not reach outside its folder.
absl::Status CheckRelativeFile(absl::string_view field, const std::string& name) {
  if (name.empty()) return Field(field, "must not be empty");
  const fs::path p(name);
  if (p.is_absolute())
    return Field(field, absl::StrCat("\"", name, "\" must be relative to the package folder"));
  for (const auto& part : p) {
    if (part == "..") return Field(field, absl::StrCat("\"", name, "\" must not contain \"..\""));
  }
  return absl::OkStatus();
}

absl::Status WithPrefix(absl::string_view prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}


absl::Status GetDtype(const json& j, absl::string_view prefix, ModuleDtype* out) {
  std::string name = "float32";
  TPDIFF_RETURN_IF_ERROR(GetString(j, "dtype", false, &name, prefix));
  for (ModuleDtype d : {ModuleDtype::kFloat32, ModuleDtype::kFloat16, ModuleDtype::kBFloat16}) {
    if (name == ModuleDtypeName(d)) {
      *out = d;
      return absl::OkStatus();
    }
  }
  return Field(absl::StrCat(prefix, "dtype"),
               absl::StrCat("\"", name, "\" is not float32, float16 or bfloat16"));
}

absl::Status GetFile(const json& j, absl::string_view prefix, std::string* out) {
  TPDIFF_RETURN_IF_ERROR(GetString(j, "file", true, out, prefix));
  return CheckRelativeFile(absl::StrCat(prefix, "file"), *out);
}

// "scale"/"shift" of the vae: one number, or one per latent channel.
absl::Status GetChannelValues(const json& vae, const char* key, int channels, bool nonzero,
                              std::vector<double>* out) {
  const std::string name = absl::StrCat("vae.", key);
  if (!vae.contains(key)) return absl::OkStatus();
  const json& v = vae[key];
  std::vector<double> values;
  if (v.is_number()) {
    values.push_back(v.get<double>());
  } else if (v.is_array()) {
    for (const json& x : v) {
      if (!x.is_number()) return Field(name, "must be a number or an array of numbers");
      values.push_back(x.get<double>());
    }
    if (static_cast<int>(values.size()) != channels) {
      return Field(name, absl::StrCat(values.size(), " values; expected latent_channels (",
                                      channels, ") or one number"));
    }
  } else {
    return Field(name, "must be a number or an array of numbers");
  }
  for (double x : values) {
    if (!std::isfinite(x) || (nonzero && x == 0.0)) {
      return Field(name, absl::StrCat(x, nonzero ? " must be finite and non-zero" : " must be finite"));
    }
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::Status ParseSchedule(const json& j, ScheduleConfig* c) {
  const json* o = nullptr;
  TPDIFF_RETURN_IF_ERROR(GetObject(j, "schedule", kScheduleFields, &o));
  constexpr absl::string_view kP = "schedule.";
  std::string type;
  TPDIFF_RETURN_IF_ERROR(GetString(*o, "type", true, &type, kP));
  if (type != "flow_matching" && type != "vp") {
    return Field("schedule.type", absl::StrCat("\"", type, "\" is not \"flow_matching\" or \"vp\""));
  }
  const bool flow = type == "flow_matching";
  c->type = flow ? Parameterization::kFlowMatching : Parameterization::kVpEps;
  const char* flow_only[] = {"shift", "timestep_scale"};
  const char* vp_only[] = {"beta_schedule", "beta_start", "beta_end", "num_train_timesteps"};
  for (const char* key : flow_only) {
    if (!flow && o->contains(key)) return Field(absl::StrCat(kP, key), "only for type \"flow_matching\"");
  }
  for (const char* key : vp_only) {
    if (flow && o->contains(key)) return Field(absl::StrCat(kP, key), "only for type \"vp\"");
  }
  std::string prediction = flow ? "flow_velocity" : "epsilon";
  TPDIFF_RETURN_IF_ERROR(GetString(*o, "prediction", false, &prediction, kP));
  bool known = false;
  for (Prediction p : {Prediction::kFlowVelocity, Prediction::kEpsilon, Prediction::kV}) {
    if (prediction == PredictionName(p)) {
      c->prediction = p;
      known = true;
    }
  }
  if (!known) {
    return Field("schedule.prediction",
                 absl::StrCat("\"", prediction, "\" is not flow_velocity, epsilon or v"));
  }
  TPDIFF_RETURN_IF_ERROR(GetDouble(*o, "shift", false, &c->shift, kP));
  TPDIFF_RETURN_IF_ERROR(GetDouble(*o, "timestep_scale", false, &c->timestep_scale, kP));
  std::string betas = "scaled_linear";
  TPDIFF_RETURN_IF_ERROR(GetString(*o, "beta_schedule", false, &betas, kP));
  if (betas == "scaled_linear") {
    c->beta_schedule = BetaSchedule::kScaledLinear;
  } else if (betas == "linear") {
    c->beta_schedule = BetaSchedule::kLinear;
  } else {
    return Field("schedule.beta_schedule",
                 absl::StrCat("\"", betas, "\" is not \"scaled_linear\" or \"linear\""));
  }
  TPDIFF_RETURN_IF_ERROR(GetDouble(*o, "beta_start", false, &c->beta_start, kP));
  TPDIFF_RETURN_IF_ERROR(GetDouble(*o, "beta_end", false, &c->beta_end, kP));
  TPDIFF_RETURN_IF_ERROR(GetInt(*o, "num_train_timesteps", false, 2, kMaxTrainTimesteps,
                                &c->num_train_timesteps, kP));
  return ValidateScheduleConfig(*c);
}

absl::Status ParseLatentObjects(const json& j, LatentConfig* l) {
  TPDIFF_RETURN_IF_ERROR(ParseSchedule(j, &l->schedule));

  const json* o = nullptr;
  TPDIFF_RETURN_IF_ERROR(GetObject(j, "tokenizer", kTokenizerFields, &o));
  std::string kind;
  TPDIFF_RETURN_IF_ERROR(GetString(*o, "kind", true, &kind, "tokenizer."));
  absl::StatusOr<TokenizerKind> tk = ParseTokenizerKind(kind, "tokenizer.kind");
  if (!tk.ok()) return tk.status();
  l->tokenizer.kind = *tk;
  TPDIFF_RETURN_IF_ERROR(GetFile(*o, "tokenizer.", &l->tokenizer.file));
  TPDIFF_RETURN_IF_ERROR(GetInt(*o, "max_tokens", false, 1, Tokenizer::kMaxModelTokens,
                                &l->tokenizer.max_tokens, "tokenizer."));

  TPDIFF_RETURN_IF_ERROR(GetObject(j, "text_encoder", kTextEncoderFields, &o));
  TPDIFF_RETURN_IF_ERROR(GetFile(*o, "text_encoder.", &l->text_encoder.file));
  TPDIFF_RETURN_IF_ERROR(
      GetInt(*o, "dim", true, 1, kMaxTextDim, &l->text_encoder.dim, "text_encoder."));
  TPDIFF_RETURN_IF_ERROR(GetDtype(*o, "text_encoder.", &l->text_encoder.dtype));

  TPDIFF_RETURN_IF_ERROR(GetObject(j, "denoiser", kDenoiserFields, &o));
  TPDIFF_RETURN_IF_ERROR(GetFile(*o, "denoiser.", &l->denoiser.file));
  TPDIFF_RETURN_IF_ERROR(GetDtype(*o, "denoiser.", &l->denoiser.dtype));

  TPDIFF_RETURN_IF_ERROR(GetObject(j, "vae", kVaeFields, &o));
  VaeConfig& v = l->vae;
  TPDIFF_RETURN_IF_ERROR(GetFile(*o, "vae.", &v.file));
  TPDIFF_RETURN_IF_ERROR(
      GetInt(*o, "latent_channels", true, 1, kMaxLatentChannels, &v.latent_channels, "vae."));
  TPDIFF_RETURN_IF_ERROR(
      GetInt(*o, "temporal_factor", true, 1, kMaxTemporalFactor, &v.temporal_factor, "vae."));
  TPDIFF_RETURN_IF_ERROR(
      GetInt(*o, "spatial_factor", true, 1, kMaxSpatialFactor, &v.spatial_factor, "vae."));
  TPDIFF_RETURN_IF_ERROR(GetBool(*o, "causal_first_frame", true, &v.causal_first_frame, "vae."));
  TPDIFF_RETURN_IF_ERROR(GetChannelValues(*o, "scale", v.latent_channels, true, &v.scale));
  TPDIFF_RETURN_IF_ERROR(GetChannelValues(*o, "shift", v.latent_channels, false, &v.shift));
  return GetDtype(*o, "vae.", &v.dtype);
}

json ChannelValuesJson(const std::vector<double>& values) {
  if (values.size() == 1) return values[0];
  return values;
}

}  // namespace

absl::StatusOr<ModelManifest> ParseManifest(absl::string_view json_text) {
  const json j =
      json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("model.json: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("model.json: must be a JSON object");
  const bool latent = j.contains("kind") && j["kind"].is_string() && j["kind"] == "latent";
  TPDIFF_RETURN_IF_ERROR(latent ? CheckKnownFields(j, kKnownLatentFields)
                                : CheckKnownFields(j, kKnownFields));
  ModelManifest m;
  TPDIFF_RETURN_IF_ERROR(GetString(j, "name", true, &m.name));
  if (m.name.empty()) return Field("name", "must not be empty");
  for (char c : m.name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return Field("name",
                   absl::StrCat("\"", m.name, "\" may only use letters, digits, '-', '_', '.'"));
    }
  }
  TPDIFF_RETURN_IF_ERROR(GetString(j, "kind", true, &m.kind));
  if (m.kind != "builtin" && m.kind != "torchscript" && m.kind != "latent") {
    return Field("kind", absl::StrCat("\"", m.kind,
                                      "\" is not \"builtin\", \"torchscript\" or \"latent\""));
  }
  TPDIFF_RETURN_IF_ERROR(GetString(j, "description", false, &m.description));
  if (m.description.size() > kMaxDescriptionBytes) {
    return Field("description", absl::StrCat(m.description.size(), " bytes exceeds the maximum of ",
                                             kMaxDescriptionBytes));
  }
  if (latent) {
    TPDIFF_RETURN_IF_ERROR(ParseLatentObjects(j, &m.latent));
    m.parameterization = m.latent.schedule.type;
  } else {
    std::string param;
    TPDIFF_RETURN_IF_ERROR(GetString(j, "parameterization", true, &param));
    auto p = ParseParameterization(param);
    if (!p.ok())
      return Field("parameterization",
                   absl::StrCat("\"", param, "\" is not flow_matching or vp_eps"));
    m.parameterization = *p;
  }
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "frames", true, 1, 1024, &m.frames));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "height", true, 1, 4096, &m.height));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "width", true, 1, 4096, &m.width));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "channels", false, 1, 16, &m.channels));
  // The defaults below become a request's values, so they must lie inside the API's limits.
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "fps", false, kMinFps, kMaxFps, &m.fps));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "stages", true, 1, StagePlan::kMaxStages, &m.stages));
  int plan_frames = m.frames;
  if (latent) {
    absl::StatusOr<LatentShape> shape =
        LatentShapeFor(m.latent.vae, m.stages, m.frames, m.height, m.width);
    if (!shape.ok()) return shape.status();
    plan_frames = shape->frames;
  } else {
    const int stride = 1 << (m.stages - 1);
    if (m.frames % stride != 0) {
      return Field("frames",
                   absl::StrCat(m.frames, " is not divisible by 2^(stages-1) = ", stride));
    }
  }
  if (j.contains("boundaries")) {
    if (!j["boundaries"].is_array()) return Field("boundaries", "must be an array of numbers");
    for (const auto& b : j["boundaries"]) {
      if (!b.is_number()) return Field("boundaries", "must be an array of numbers");
      m.boundaries.push_back(b.get<double>());
    }
    if (!m.boundaries.empty() && static_cast<int>(m.boundaries.size()) != m.stages - 1) {
      return Field("boundaries", absl::StrCat(m.boundaries.size(), " values; stages ", m.stages,
                                              " needs ", m.stages - 1, " (or none for uniform)"));
    }
  }
  if (!j.contains("default_stage_steps")) return Field("default_stage_steps", "missing");
  if (!j["default_stage_steps"].is_array())
    return Field("default_stage_steps", "must be an array of integers");
  for (const auto& s : j["default_stage_steps"]) {
    if (!s.is_number_integer()) return Field("default_stage_steps", "must be an array of integers");
    const bool too_big = s.is_number_unsigned() && s.get<uint64_t>() > kMaxRequestStepsPerStage;
    const int64_t v = too_big ? int64_t{kMaxRequestStepsPerStage} + 1 : s.get<int64_t>();
    if (v < 1 || v > kMaxRequestStepsPerStage) {
      return Field("default_stage_steps",
                   absl::StrCat(s.dump(), " outside [1, ", kMaxRequestStepsPerStage, "]"));
    }
    m.default_stage_steps.push_back(static_cast<int>(v));
  }
  if (static_cast<int>(m.default_stage_steps.size()) != m.stages) {
    return Field("default_stage_steps",
                 absl::StrCat(m.default_stage_steps.size(), " values; expected one per stage (",
                              m.stages, ")"));
  }
  TPDIFF_RETURN_IF_ERROR(GetDouble(j, "default_guidance_scale", false, &m.default_guidance_scale));
  if (!(m.default_guidance_scale >= 0 && m.default_guidance_scale <= kMaxGuidanceScale)) {
    return Field("default_guidance_scale",
                 absl::StrCat(m.default_guidance_scale, " outside [0, ", kMaxGuidanceScale, "]"));
  }
  if (!latent) {
    TPDIFF_RETURN_IF_ERROR(GetString(j, "weights_file", true, &m.weights_file));
    TPDIFF_RETURN_IF_ERROR(CheckRelativeFile("weights_file", m.weights_file));
    TPDIFF_RETURN_IF_ERROR(GetString(j, "vocabulary_file", true, &m.vocabulary_file));
    TPDIFF_RETURN_IF_ERROR(CheckRelativeFile("vocabulary_file", m.vocabulary_file));
  }
  if (m.kind == "builtin") {
    if (!j.contains("network")) return Field("network", "missing (required for kind \"builtin\")");
    if (!j["network"].is_object()) return Field("network", "must be an object");
    m.network_config_json = j["network"].dump();
    auto config = NetworkConfig::FromJson(m.network_config_json);
    if (!config.ok()) return config.status();
  } else if (j.contains("network")) {
    return Field("network", "only allowed for kind \"builtin\"");
  }
  // The remaining cross-field rules (boundary order, windows the jump would empty) are the
  // stage plan's; run them now so a bad package fails at load, not at the first request.
  StagePlanOptions opts;
  opts.num_frames = plan_frames;
  opts.causal_first_frame = latent && m.latent.vae.causal_first_frame;
  opts.num_stages = m.stages;
  opts.steps_per_stage = m.default_stage_steps;
  opts.boundaries = m.boundaries;
  auto plan = StagePlan::Create(ManifestSchedule(m), opts);
  if (!plan.ok()) return Field("boundaries", plan.status().message());
  return m;
}

std::string ManifestToJson(const ModelManifest& m) {
  json j = json::object();
  j["name"] = m.name;
  j["kind"] = m.kind;
  if (!m.description.empty()) j["description"] = m.description;
  if (!m.is_latent()) {
    j["parameterization"] = std::string(ParameterizationName(m.parameterization));
  }
  j["frames"] = m.frames;
  j["height"] = m.height;
  j["width"] = m.width;
  if (!m.is_latent()) j["channels"] = m.channels;
  j["fps"] = m.fps;
  j["stages"] = m.stages;
  j["boundaries"] = m.boundaries;
  j["default_stage_steps"] = m.default_stage_steps;
  j["default_guidance_scale"] = m.default_guidance_scale;
  if (m.is_latent()) {
    const LatentConfig& l = m.latent;
    json schedule = json::object();
    schedule["prediction"] = std::string(PredictionName(l.schedule.prediction));
    if (l.schedule.type == Parameterization::kFlowMatching) {
      schedule["type"] = "flow_matching";
      schedule["shift"] = l.schedule.shift;
      schedule["timestep_scale"] = l.schedule.timestep_scale;
    } else {
      schedule["type"] = "vp";
      schedule["beta_schedule"] = std::string(BetaScheduleName(l.schedule.beta_schedule));
      schedule["beta_start"] = l.schedule.beta_start;
      schedule["beta_end"] = l.schedule.beta_end;
      schedule["num_train_timesteps"] = l.schedule.num_train_timesteps;
    }
    j["schedule"] = schedule;
    j["tokenizer"] = {{"kind", std::string(TokenizerKindName(l.tokenizer.kind))},
                      {"file", l.tokenizer.file},
                      {"max_tokens", l.tokenizer.max_tokens}};
    j["text_encoder"] = {{"file", l.text_encoder.file},
                         {"dim", l.text_encoder.dim},
                         {"dtype", std::string(ModuleDtypeName(l.text_encoder.dtype))}};
    j["denoiser"] = {{"file", l.denoiser.file},
                     {"dtype", std::string(ModuleDtypeName(l.denoiser.dtype))}};
    j["vae"] = {{"file", l.vae.file},
                {"latent_channels", l.vae.latent_channels},
                {"temporal_factor", l.vae.temporal_factor},
                {"spatial_factor", l.vae.spatial_factor},
                {"causal_first_frame", l.vae.causal_first_frame},
                {"scale", ChannelValuesJson(l.vae.scale)},
                {"shift", ChannelValuesJson(l.vae.shift)},
                {"dtype", std::string(ModuleDtypeName(l.vae.dtype))}};
    return j.dump(2) + "\n";
  }
  j["weights_file"] = m.weights_file;
  j["vocabulary_file"] = m.vocabulary_file;
  if (!m.network_config_json.empty()) {
    json net = json::parse(m.network_config_json, nullptr, false);
    if (!net.is_discarded()) j["network"] = net;
  }
  return j.dump(2) + "\n";
}

absl::string_view ModuleDtypeName(ModuleDtype dtype) {
  switch (dtype) {
    case ModuleDtype::kFloat32:
      return "float32";
    case ModuleDtype::kFloat16:
      return "float16";
    case ModuleDtype::kBFloat16:
      return "bfloat16";
  }
  return "unknown";
}

absl::StatusOr<LatentShape> LatentShapeFor(const VaeConfig& vae, int stages, int frames,
                                           int height, int width,
                                           absl::string_view frames_field) {
  const int tf = vae.temporal_factor;
  const int stride = 1 << (std::max(stages, 1) - 1);
  const int offset = vae.causal_first_frame ? 1 : 0;
  const int rest = frames - offset;
  if (tf < 1 || rest <= 0 || rest % tf != 0 || (rest / tf) % stride != 0) {
    if (vae.causal_first_frame) {
      return Field(frames_field,
                   absl::StrCat(frames, " must be 1 + vae.temporal_factor (", tf,
                                ") * N with N a positive multiple of 2^(stages-1) = ", stride,
                                " (vae.causal_first_frame), e.g. ", 1 + tf * stride));
    }
    return Field(frames_field,
                 absl::StrCat(frames, " must be vae.temporal_factor (", tf,
                              ") * N with N a positive multiple of 2^(stages-1) = ", stride,
                              ", e.g. ", tf * stride));
  }
  const int sf = vae.spatial_factor;
  if (sf < 1 || height % sf != 0) {
    return Field("height",
                 absl::StrCat(height, " is not a multiple of vae.spatial_factor ", sf));
  }
  if (width % sf != 0) {
    return Field("width", absl::StrCat(width, " is not a multiple of vae.spatial_factor ", sf));
  }
  return LatentShape{offset + rest / tf, height / sf, width / sf};
}

NoiseSchedule ManifestSchedule(const ModelManifest& m) {
  if (m.is_latent()) {
    absl::StatusOr<NoiseSchedule> schedule = NoiseSchedule::FromConfig(m.latent.schedule);
    // ParseManifest validated the config; a hand-built manifest with a bad one falls back to
    // the plain schedule of its type rather than failing here.
    if (schedule.ok()) return *schedule;
  }
  return NoiseSchedule(m.parameterization);
}

absl::StatusOr<ModelManifest> ReadManifest(const std::string& dir) {
  std::error_code error;
  if (!fs::is_directory(dir, error))
    return absl::NotFoundError(absl::StrCat(dir, ": no such model folder"));
  const std::string path = (fs::path(dir) / kManifestFile).string();
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  auto m = ParseManifest(*text);
  if (!m.ok()) return WithPrefix(path, m.status());
  return m;
}

absl::Status CheckPackage(const ModelManifest& manifest, const Tokenizer& tokenizer) {
  if (manifest.is_latent()) {
    const TokenizerConfig& want = manifest.latent.tokenizer;
    if (tokenizer.kind() != want.kind || tokenizer.max_tokens() != want.max_tokens) {
      return Field("tokenizer", absl::StrCat("the tokenizer is ", TokenizerKindName(tokenizer.kind()),
                                             " with max_tokens ", tokenizer.max_tokens(),
                                             "; the manifest says ", TokenizerKindName(want.kind),
                                             " with ", want.max_tokens));
    }
    return absl::OkStatus();
  }
  if (manifest.kind != "builtin") return absl::OkStatus();
  auto config = NetworkConfig::FromJson(manifest.network_config_json);
  if (!config.ok()) return config.status();
  if (config->channels != manifest.channels) {
    return Field("network.channels",
                 absl::StrCat(config->channels, " != channels ", manifest.channels));
  }
  if (manifest.height > config->max_height || manifest.height % config->patch != 0) {
    return Field("height", absl::StrCat(manifest.height, " must be a multiple of network.patch ",
                                        config->patch, " and at most network.max_height ",
                                        config->max_height));
  }
  if (manifest.width > config->max_width || manifest.width % config->patch != 0) {
    return Field("width",
                 absl::StrCat(manifest.width, " must be a multiple of network.patch ",
                              config->patch, " and at most network.max_width ", config->max_width));
  }
  if (manifest.stages > config->max_stages) {
    return Field("stages", absl::StrCat(manifest.stages, " exceeds network.max_stages ",
                                        config->max_stages));
  }
  if (tokenizer.vocab_size() > config->vocab_size) {
    return Field(
        "vocabulary_file",
        absl::StrCat(tokenizer.words().size(), " words need vocab_size ", tokenizer.vocab_size(),
                     " but network.vocab_size is ", config->vocab_size));
  }
  if (Tokenizer::kMaxTokens > config->max_tokens) {
    return Field("network.max_tokens", absl::StrCat(config->max_tokens, " is below the tokenizer's ",
                                                    Tokenizer::kMaxTokens));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> ReadModelPackageSpec(const std::string& dir) {
  absl::StatusOr<ModelManifest> manifest = ReadManifest(dir);
  if (!manifest.ok()) return manifest.status();
  const bool latent = manifest->is_latent();
  const std::string field = latent ? "tokenizer.file" : "vocabulary_file";
  const std::string& file = latent ? manifest->latent.tokenizer.file : manifest->vocabulary_file;
  absl::StatusOr<std::string> text = ReadFileToString((fs::path(dir) / file).string());
  if (!text.ok()) return WithPrefix(absl::StrCat(dir, ": ", field), text.status());
  absl::StatusOr<Tokenizer> tokenizer;
  if (!latent) {
    tokenizer = Tokenizer::FromVocabularyText(*text);
  } else if (manifest->latent.tokenizer.kind == TokenizerKind::kWords) {
    tokenizer = Tokenizer::FromVocabularyText(*text, manifest->latent.tokenizer.max_tokens);
  } else {
    tokenizer = Tokenizer::FromSentencePiece(*std::move(text), manifest->latent.tokenizer.max_tokens);
  }
  if (!tokenizer.ok()) {
    // FromSentencePiece's messages name their field already.
    return WithPrefix(latent && manifest->latent.tokenizer.kind == TokenizerKind::kSentencePiece
                          ? dir
                          : absl::StrCat(dir, ": ", field),
                      tokenizer.status());
  }
  if (absl::Status s = CheckPackage(*manifest, *tokenizer); !s.ok()) return WithPrefix(dir, s);
  return ModelSpec{*std::move(manifest), *std::move(tokenizer)};
}

}  // namespace tpdiff::spec
