#include "tpdiff/model/model_package.h"

#include <torch/script.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tpdiff/model/network.h"
#include "tpdiff/model/safetensors.h"
#include "tpdiff/core/stage_plan.h"
#include "tpdiff/core/torch_status.h"

namespace tpdiff::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kManifestFile[] = "model.json";

absl::Status Field(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Typed field readers: each error names the field.
absl::Status GetString(const json& j, const char* key, bool required, std::string* out) {
  if (!j.contains(key)) return required ? Field(key, "missing") : absl::OkStatus();
  if (!j[key].is_string()) return Field(key, "must be a string");
  *out = j[key].get<std::string>();
  return absl::OkStatus();
}

absl::Status GetInt(const json& j, const char* key, bool required, int lo, int hi, int* out) {
  if (!j.contains(key)) return required ? Field(key, "missing") : absl::OkStatus();
  if (!j[key].is_number_integer()) return Field(key, "must be an integer");
  const int64_t v = j[key].get<int64_t>();
  if (v < lo || v > hi) return Field(key, absl::StrCat(v, " outside [", lo, ", ", hi, "]"));
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

absl::Status GetDouble(const json& j, const char* key, bool required, double* out) {
  if (!j.contains(key)) return required ? Field(key, "missing") : absl::OkStatus();
  if (!j[key].is_number()) return Field(key, "must be a number");
  *out = j[key].get<double>();
  return absl::OkStatus();
}

// Package-relative file names only: a manifest must not reach outside its folder.
absl::Status CheckRelativeFile(const char* field, const std::string& name) {
  if (name.empty()) return Field(field, "must not be empty");
  const fs::path p(name);
  if (p.is_absolute())
    return Field(field, absl::StrCat("\"", name, "\" must be relative to the package folder"));
  for (const auto& part : p) {
    if (part == "..") return Field(field, absl::StrCat("\"", name, "\" must not contain \"..\""));
  }
  return absl::OkStatus();
}

#define TPDIFF_RETURN_IF_ERROR(expr) \
  do {                               \
    const absl::Status _st = (expr); \
    if (!_st.ok()) return _st;       \
  } while (0)

absl::StatusOr<std::string> ReadPackageFile(const std::string& dir, const std::string& name,
                                            const char* field) {
  auto text = ReadFileToString((fs::path(dir) / name).string());
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat(field, ": ", text.status().message()));
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Loaded models

// Both package kinds: the manifest, the tokenizer and the shared weights, from which
// `new_denoiser` makes each thread's Denoiser.
class PackagedModel : public LoadedModel {
 public:
  using DenoiserFactory = std::function<std::unique_ptr<core::Denoiser>()>;
  PackagedModel(ModelManifest manifest, core::Tokenizer tokenizer, DenoiserFactory new_denoiser,
                torch::Device device)
      : manifest_(std::move(manifest)),
        tokenizer_(std::move(tokenizer)),
        new_denoiser_(std::move(new_denoiser)),
        device_(device) {}
  const ModelManifest& manifest() const override { return manifest_; }
  const core::Tokenizer& tokenizer() const override { return tokenizer_; }
  torch::Device device() const override { return device_; }
  std::unique_ptr<core::Denoiser> NewDenoiser() const override { return new_denoiser_(); }

 private:
  const ModelManifest manifest_;
  const core::Tokenizer tokenizer_;
  const DenoiserFactory new_denoiser_;  // owns the weights' handle; each call copies it
  const torch::Device device_;
};

// A torch::jit::Module is a handle: copies share the module's parameters and methods, so each
// denoiser holds its own handle to the one loaded module.
class TorchScriptDenoiser : public core::Denoiser {
 public:
  explicit TorchScriptDenoiser(torch::jit::Module module) : module_(std::move(module)) {}

  absl::StatusOr<torch::Tensor> Predict(const core::DenoiserInput& in) override {
    auto out = core::TorchCall("torchscript forward", [&] {
      torch::NoGradGuard no_grad;
      return module_.forward({in.x, in.t, in.stage, in.tokens});
    });
    if (!out.ok()) return out.status();
    if (!out->isTensor()) {
      return absl::InternalError("torchscript forward: returned a non-tensor value");
    }
    torch::Tensor y = out->toTensor();
    if (y.sizes() != in.x.sizes()) {
      std::ostringstream got, want;
      got << y.sizes();
      want << in.x.sizes();
      return absl::InternalError(absl::StrCat("torchscript forward: output shape ", got.str(),
                                              " != input shape ", want.str()));
    }
    return y;
  }

 private:
  torch::jit::Module module_;
};

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadBuiltin(const std::string& dir,
                                                         ModelManifest manifest,
                                                         core::Tokenizer tokenizer,
                                                         torch::Device device) {
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
    return Field("stages",
                 absl::StrCat(manifest.stages, " exceeds network.max_stages ", config->max_stages));
  }
  if (tokenizer.vocab_size() > config->vocab_size) {
    return Field(
        "vocabulary_file",
        absl::StrCat(tokenizer.words().size(), " words need vocab_size ", tokenizer.vocab_size(),
                     " but network.vocab_size is ", config->vocab_size));
  }
  if (core::Tokenizer::kMaxTokens > config->max_tokens) {
    return Field(
        "network.max_tokens",
        absl::StrCat(config->max_tokens, " is below the tokenizer's ", core::Tokenizer::kMaxTokens));
  }
  const std::string weights_path = (fs::path(dir) / manifest.weights_file).string();
  auto weights = ReadSafetensors(weights_path);
  if (absl::IsNotFound(weights.status())) {
    return absl::NotFoundError(absl::StrCat("weights_file: ", weights.status().message()));
  }
  if (!weights.ok()) return weights.status();
  auto net = core::TorchCall("build network", [&] { return TpdiffNet(*config); });
  if (!net.ok()) return net.status();
  TPDIFF_RETURN_IF_ERROR(LoadNetworkState(**net, weights->tensors));
  auto moved = core::TorchCall("move network to device", [&] {
    (*net)->to(device);
    (*net)->eval();
    return 0;
  });
  if (!moved.ok()) return moved.status();
  // Every denoiser shares the network (a TpdiffNet is a shared handle to its module).
  return std::unique_ptr<LoadedModel>(new PackagedModel(
      std::move(manifest), std::move(tokenizer),
      [net = *std::move(net)] { return std::make_unique<NetworkDenoiser>(net); }, device));
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadTorchScript(const std::string& dir,
                                                             ModelManifest manifest,
                                                             core::Tokenizer tokenizer,
                                                             torch::Device device) {
  const std::string path = (fs::path(dir) / manifest.weights_file).string();
  if (!fs::exists(path)) {
    return absl::NotFoundError(absl::StrCat("weights_file: ", path, ": no such file"));
  }
  auto module = core::TorchCall("torchscript load", [&] { return torch::jit::load(path, device); });
  if (!module.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights_file: ", path, " is not a TorchScript module: ", module.status().message()));
  }
  module->eval();
  auto method = module->find_method("forward");
  if (!method) return Field("weights_file", "TorchScript module has no forward method");
  const c10::FunctionSchema& schema = method->function().getSchema();
  const auto& args = schema.arguments();  // args[0] is self
  std::vector<std::string> names;
  for (size_t i = 1; i < args.size(); ++i) names.push_back(args[i].name());
  const std::string expected =
      "forward(x, t, stage, tokens) with 4 Tensor inputs returning a Tensor";
  if (args.size() != 5) {
    return Field("weights_file",
                 absl::StrCat("TorchScript forward(", absl::StrJoin(names, ", "), ") has ",
                              names.size(), " inputs; expected ", expected));
  }
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i].type()->kind() != c10::TypeKind::TensorType) {
      return Field("weights_file",
                   absl::StrCat("TorchScript forward input \"", args[i].name(), "\" has type ",
                                args[i].type()->str(), "; expected ", expected));
    }
  }
  if (schema.returns().size() != 1 ||
      schema.returns()[0].type()->kind() != c10::TypeKind::TensorType) {
    return Field("weights_file",
                 absl::StrCat("TorchScript forward must return one Tensor; expected ", expected));
  }
  // One tiny forward at the noisiest stage's frame count proves the contract end to end.
  TorchScriptDenoiser probe(*module);
  const int k = manifest.stages;
  const auto long_opts = torch::TensorOptions(device).dtype(torch::kLong);
  core::DenoiserInput in;
  in.x = torch::zeros(
      {1, manifest.channels, manifest.frames >> (k - 1), manifest.height, manifest.width},
      torch::TensorOptions(device).dtype(torch::kFloat));
  in.t = torch::ones({1}, torch::TensorOptions(device).dtype(torch::kFloat));
  in.stage = torch::full({1}, static_cast<int64_t>(k), long_opts);
  in.tokens = torch::zeros({1, core::Tokenizer::kMaxTokens}, long_opts);
  auto y = probe.Predict(in);
  if (!y.ok()) {
    return Field("weights_file", absl::StrCat("TorchScript module failed the probe forward: ",
                                              y.status().message()));
  }
  return std::unique_ptr<LoadedModel>(new PackagedModel(
      std::move(manifest), std::move(tokenizer),
      [module = *std::move(module)] { return std::make_unique<TorchScriptDenoiser>(module); },
      device));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Manifest

absl::StatusOr<ModelManifest> ParseManifest(absl::string_view json_text) {
  const json j =
      json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("model.json: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("model.json: must be a JSON object");
  static const char* const kKnown[] = {"name",
                                       "kind",
                                       "parameterization",
                                       "frames",
                                       "height",
                                       "width",
                                       "channels",
                                       "fps",
                                       "stages",
                                       "boundaries",
                                       "default_stage_steps",
                                       "default_guidance_scale",
                                       "weights_file",
                                       "vocabulary_file",
                                       "network"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : kKnown) known = known || it.key() == k;
    if (!known) return Field(it.key(), "unknown field");
  }
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
  if (m.kind != "builtin" && m.kind != "torchscript") {
    return Field("kind", absl::StrCat("\"", m.kind, "\" is not \"builtin\" or \"torchscript\""));
  }
  std::string param = "flow_matching";
  TPDIFF_RETURN_IF_ERROR(GetString(j, "parameterization", true, &param));
  auto p = core::ParseParameterization(param);
  if (!p.ok())
    return Field("parameterization",
                 absl::StrCat("\"", param, "\" is not flow_matching or vp_eps"));
  m.parameterization = *p;
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "frames", true, 1, 1024, &m.frames));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "height", true, 1, 4096, &m.height));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "width", true, 1, 4096, &m.width));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "channels", false, 1, 16, &m.channels));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "fps", false, 1, 240, &m.fps));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "stages", true, 1, core::StagePlan::kMaxStages, &m.stages));
  const int stride = 1 << (m.stages - 1);
  if (m.frames % stride != 0) {
    return Field("frames", absl::StrCat(m.frames, " is not divisible by 2^(stages-1) = ", stride));
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
    const int64_t v = s.get<int64_t>();
    if (v < 1 || v > core::StagePlan::kMaxStepsPerStage) {
      return Field("default_stage_steps",
                   absl::StrCat(v, " outside [1, ", core::StagePlan::kMaxStepsPerStage, "]"));
    }
    m.default_stage_steps.push_back(static_cast<int>(v));
  }
  if (static_cast<int>(m.default_stage_steps.size()) != m.stages) {
    return Field("default_stage_steps",
                 absl::StrCat(m.default_stage_steps.size(), " values; expected one per stage (",
                              m.stages, ")"));
  }
  TPDIFF_RETURN_IF_ERROR(GetDouble(j, "default_guidance_scale", false, &m.default_guidance_scale));
  if (!(m.default_guidance_scale >= 0 && m.default_guidance_scale <= 50)) {
    return Field("default_guidance_scale",
                 absl::StrCat(m.default_guidance_scale, " outside [0, 50]"));
  }
  TPDIFF_RETURN_IF_ERROR(GetString(j, "weights_file", true, &m.weights_file));
  TPDIFF_RETURN_IF_ERROR(CheckRelativeFile("weights_file", m.weights_file));
  TPDIFF_RETURN_IF_ERROR(GetString(j, "vocabulary_file", true, &m.vocabulary_file));
  TPDIFF_RETURN_IF_ERROR(CheckRelativeFile("vocabulary_file", m.vocabulary_file));
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
  core::StagePlanOptions opts;
  opts.num_frames = m.frames;
  opts.num_stages = m.stages;
  opts.steps_per_stage = m.default_stage_steps;
  opts.boundaries = m.boundaries;
  auto plan = core::StagePlan::Create(core::NoiseSchedule(m.parameterization), opts);
  if (!plan.ok()) return Field("boundaries", plan.status().message());
  return m;
}

std::string ManifestToJson(const ModelManifest& m) {
  json j = json::object();
  j["name"] = m.name;
  j["kind"] = m.kind;
  j["parameterization"] = std::string(core::ParameterizationName(m.parameterization));
  j["frames"] = m.frames;
  j["height"] = m.height;
  j["width"] = m.width;
  j["channels"] = m.channels;
  j["fps"] = m.fps;
  j["stages"] = m.stages;
  j["boundaries"] = m.boundaries;
  j["default_stage_steps"] = m.default_stage_steps;
  j["default_guidance_scale"] = m.default_guidance_scale;
  j["weights_file"] = m.weights_file;
  j["vocabulary_file"] = m.vocabulary_file;
  if (!m.network_config_json.empty()) {
    json net = json::parse(m.network_config_json, nullptr, false);
    if (!net.is_discarded()) j["network"] = net;
  }
  return j.dump(2) + "\n";
}

absl::StatusOr<ModelManifest> ReadManifest(const std::string& dir) {
  if (!fs::is_directory(dir))
    return absl::NotFoundError(absl::StrCat(dir, ": no such model folder"));
  const std::string path = (fs::path(dir) / kManifestFile).string();
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  auto m = ParseManifest(*text);
  if (!m.ok())
    return absl::Status(m.status().code(), absl::StrCat(path, ": ", m.status().message()));
  return m;
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModelPackage(const std::string& dir,
                                                              torch::Device device) {
  auto manifest = ReadManifest(dir);
  if (!manifest.ok()) return manifest.status();
  auto vocab = ReadPackageFile(dir, manifest->vocabulary_file, "vocabulary_file");
  if (!vocab.ok()) return vocab.status();
  auto tokenizer = core::Tokenizer::FromVocabularyText(*vocab);
  if (!tokenizer.ok()) {
    return Field("vocabulary_file", tokenizer.status().message());
  }
  absl::StatusOr<std::unique_ptr<LoadedModel>> model =
      manifest->kind == "builtin"
          ? LoadBuiltin(dir, *std::move(manifest), *std::move(tokenizer), device)
          : LoadTorchScript(dir, *std::move(manifest), *std::move(tokenizer), device);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat(dir, ": ", model.status().message()));
  }
  return model;
}

// ---------------------------------------------------------------------------------------------
// Writing packages

absl::Status WriteModelPackage(const std::string& dir, const ModelManifest& manifest_in,
                               const core::Tokenizer& tokenizer, const TpdiffNetImpl& network) {
  ModelManifest m = manifest_in;
  m.kind = "builtin";
  m.network_config_json = network.config().ToJson();
  if (m.weights_file.empty()) m.weights_file = "weights.safetensors";
  if (m.vocabulary_file.empty()) m.vocabulary_file = "vocab.txt";
  const std::string text = ManifestToJson(m);
  // Validate what we are about to write: a package that cannot be loaded back is a bug here.
  auto reparsed = ParseManifest(text);
  if (!reparsed.ok()) return reparsed.status();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  NamedTensors state = NetworkState(network);
  TPDIFF_RETURN_IF_ERROR(WriteSafetensors((fs::path(dir) / m.weights_file).string(), state,
                                          {{"format", "tpdiff-builtin"}}));
  TPDIFF_RETURN_IF_ERROR(WriteStringToFileAtomic((fs::path(dir) / m.vocabulary_file).string(),
                                                 tokenizer.ToVocabularyText()));
  return WriteStringToFileAtomic((fs::path(dir) / kManifestFile).string(), text);
}

ModelManifest DefaultBuiltinManifest(const std::string& name) {
  ModelManifest m;
  m.name = name;
  m.kind = "builtin";
  m.parameterization = core::Parameterization::kFlowMatching;
  m.frames = 16;
  m.height = 32;
  m.width = 32;
  m.channels = 3;
  m.fps = 8;
  m.stages = 3;
  m.default_stage_steps = {10, 10, 10};
  m.default_guidance_scale = 3.0;
  m.weights_file = "weights.safetensors";
  m.vocabulary_file = "vocab.txt";
  return m;
}

absl::Status CreateRandomBuiltinPackage(const std::string& dir, const std::string& name,
                                        NetworkConfig config, uint64_t seed) {
  auto tokenizer = core::Tokenizer::FromWords(core::ShapesVocabulary());
  if (!tokenizer.ok()) return tokenizer.status();
  config.vocab_size = tokenizer->vocab_size();
  TPDIFF_RETURN_IF_ERROR(config.Validate());
  auto net = core::TorchCall("build random network", [&] {
    TpdiffNet net(config);
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (auto& item : net->named_parameters()) {
      torch::Tensor& p = item.value();
      // LayerNorm affine parameters keep their identity initialisation.
      if (item.key().find("norm") != std::string::npos) continue;
      const double std = p.dim() == 2 ? 1.0 / std::sqrt(static_cast<double>(p.size(1))) : 0.02;
      p.normal_(0.0, std, gen);
    }
    return net;
  });
  if (!net.ok()) return net.status();
  ModelManifest m = DefaultBuiltinManifest(name);
  m.height = std::min(m.height, config.max_height);
  m.width = std::min(m.width, config.max_width);
  return WriteModelPackage(dir, m, *tokenizer, **net);
}

}  // namespace tpdiff::model
