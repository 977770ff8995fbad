#include "tpdiff/model/model_package.h"

#include <torch/script.h>

#include <filesystem>
#include <functional>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tpdiff/model/latent_job.h"
#include "tpdiff/model/network.h"
#include "tpdiff/model/safetensors.h"
#include "tpdiff/core/torch_status.h"
#include "tpdiff/spec/status_macros.h"

namespace tpdiff::model {
namespace {

namespace fs = std::filesystem;

absl::Status Field(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// ---------------------------------------------------------------------------------------------
// Loaded models

// Both package kinds: the manifest, the tokenizer and the shared weights, from which
// `new_denoiser` makes each thread's Denoiser.
class PackagedModel : public LoadedModel {
 public:
  using DenoiserFactory = std::function<std::unique_ptr<core::Denoiser>()>;
  PackagedModel(spec::ModelManifest manifest, spec::Tokenizer tokenizer,
                DenoiserFactory new_denoiser, torch::Device device,
                std::shared_ptr<const LatentModules> latent = nullptr)
      : manifest_(std::move(manifest)),
        tokenizer_(std::move(tokenizer)),
        new_denoiser_(std::move(new_denoiser)),
        device_(device),
        latent_(std::move(latent)) {}
  const spec::ModelManifest& manifest() const override { return manifest_; }
  const spec::Tokenizer& tokenizer() const override { return tokenizer_; }
  torch::Device device() const override { return device_; }
  std::unique_ptr<core::Denoiser> NewDenoiser() const override { return new_denoiser_(); }
  std::shared_ptr<const LatentModules> latent_modules() const override { return latent_; }

 private:
  const spec::ModelManifest manifest_;
  const spec::Tokenizer tokenizer_;
  const DenoiserFactory new_denoiser_;  // owns the weights' handle; each call copies it
  const torch::Device device_;
  const std::shared_ptr<const LatentModules> latent_;
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
                                                         spec::ModelManifest manifest,
                                                         spec::Tokenizer tokenizer,
                                                         torch::Device device) {
  auto config = NetworkConfig::FromJson(manifest.network_config_json);
  if (!config.ok()) return config.status();
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
                                                             spec::ModelManifest manifest,
                                                             spec::Tokenizer tokenizer,
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
  in.tokens = torch::zeros({1, spec::Tokenizer::kMaxTokens}, long_opts);
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

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadLatent(const std::string& dir,
                                                        spec::ModelManifest manifest,
                                                        spec::Tokenizer tokenizer,
                                                        torch::Device device) {
  const spec::LatentConfig& latent = manifest.latent;
  // The stage frame counts of the manifest's own request (its defaults are its maxima): the
  // stage plan is the one rule for them.
  LatentJobRequest defaults;
  defaults.stage_steps = manifest.default_stage_steps;
  defaults.num_frames = manifest.frames;
  defaults.height = manifest.height;
  defaults.width = manifest.width;
  absl::StatusOr<core::StagePlan> plan = LatentPlan(manifest, defaults);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<spec::LatentShape> shape =
      spec::LatentShapeFor(latent.vae, manifest.stages, manifest.frames, manifest.height,
                           manifest.width);
  if (!shape.ok()) return shape.status();
  auto path = [&](const std::string& file) { return (fs::path(dir) / file).string(); };
  LatentModuleConfig c;
  c.text_encoder_file = path(latent.text_encoder.file);
  c.denoiser_file = path(latent.denoiser.file);
  c.vae_file = path(latent.vae.file);
  c.text_encoder_dtype = latent.text_encoder.dtype;
  c.denoiser_dtype = latent.denoiser.dtype;
  c.vae_dtype = latent.vae.dtype;
  c.max_tokens = latent.tokenizer.max_tokens;
  c.context_dim = latent.text_encoder.dim;
  c.latent_channels = latent.vae.latent_channels;
  c.latent_height = shape->height;
  c.latent_width = shape->width;
  c.spatial_factor = latent.vae.spatial_factor;
  c.temporal_factor = latent.vae.temporal_factor;
  c.causal_first_frame = latent.vae.causal_first_frame;
  // Sampling order is stage K first; the config lists stage 1 first.
  for (auto it = plan->stages().rbegin(); it != plan->stages().rend(); ++it) {
    c.stage_latent_frames.push_back(it->frames);
  }
  c.scale = latent.vae.scale;
  c.shift = latent.vae.shift;
  absl::StatusOr<std::shared_ptr<const LatentModules>> modules = LatentModules::Load(c, device);
  if (!modules.ok()) return modules.status();
  return std::unique_ptr<LoadedModel>(new PackagedModel(
      std::move(manifest), std::move(tokenizer),
      [modules = *modules] { return std::make_unique<LatentDenoiser>(modules); }, device,
      *modules));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Loading

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModelPackage(const std::string& dir,
                                                              torch::Device device) {
  absl::StatusOr<spec::ModelSpec> package = spec::ReadModelPackageSpec(dir);
  if (!package.ok()) return package.status();
  absl::StatusOr<std::unique_ptr<LoadedModel>> model =
      package->manifest.is_latent()
          ? LoadLatent(dir, std::move(package->manifest), std::move(package->tokenizer), device)
      : package->manifest.kind == "builtin"
          ? LoadBuiltin(dir, std::move(package->manifest), std::move(package->tokenizer), device)
          : LoadTorchScript(dir, std::move(package->manifest), std::move(package->tokenizer),
                            device);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat(dir, ": ", model.status().message()));
  }
  return model;
}

// ---------------------------------------------------------------------------------------------
// Writing packages

absl::Status WriteModelPackage(const std::string& dir, const spec::ModelManifest& manifest_in,
                               const spec::Tokenizer& tokenizer, const TpdiffNetImpl& network) {
  spec::ModelManifest m = manifest_in;
  m.kind = "builtin";
  m.network_config_json = network.config().ToJson();
  if (m.weights_file.empty()) m.weights_file = "weights.safetensors";
  if (m.vocabulary_file.empty()) m.vocabulary_file = "vocab.txt";
  const std::string text = spec::ManifestToJson(m);
  // Validate what we are about to write: a package that cannot be loaded back is a bug here.
  auto reparsed = spec::ParseManifest(text);
  if (!reparsed.ok()) return reparsed.status();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  NamedTensors state = NetworkState(network);
  TPDIFF_RETURN_IF_ERROR(WriteSafetensors((fs::path(dir) / m.weights_file).string(), state,
                                          {{"format", "tpdiff-builtin"}}));
  TPDIFF_RETURN_IF_ERROR(WriteStringToFileAtomic((fs::path(dir) / m.vocabulary_file).string(),
                                                 tokenizer.ToVocabularyText()));
  return WriteStringToFileAtomic((fs::path(dir) / spec::kManifestFile).string(), text);
}

spec::ModelManifest DefaultBuiltinManifest(const std::string& name) {
  spec::ModelManifest m;
  m.name = name;
  m.kind = "builtin";
  m.parameterization = spec::Parameterization::kFlowMatching;
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
  auto tokenizer = spec::Tokenizer::FromWords(spec::ShapesVocabulary());
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
  spec::ModelManifest m = DefaultBuiltinManifest(name);
  m.height = std::min(m.height, config.max_height);
  m.width = std::min(m.width, config.max_width);
  return WriteModelPackage(dir, m, *tokenizer, **net);
}

}  // namespace tpdiff::model
