#include "tpdiff/model/latent_modules.h"

#include <ATen/Context.h>
#include <torch/script.h>

#include <filesystem>
#include <iostream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tpdiff/spec/status_macros.h"

namespace tpdiff::model {
namespace {

namespace fs = std::filesystem;

std::string Shape(const torch::Tensor& t) { return c10::str(t.sizes()); }
std::string Shape(const std::vector<int64_t>& sizes) { return c10::str(c10::IntArrayRef(sizes)); }

at::ScalarType ScalarType(spec::ModuleDtype dtype) {
  switch (dtype) {
    case spec::ModuleDtype::kFloat16:
      return at::kHalf;
    case spec::ModuleDtype::kBFloat16:
      return at::kBFloat16;
    case spec::ModuleDtype::kFloat32:
      break;
  }
  return at::kFloat;
}

// "Error:" or "Exception:" right after an identifier at the start of a line: the line where a
// TorchScript traceback states its cause.
bool IsCauseLine(absl::string_view line) {
  const size_t colon = line.find(": ");
  if (colon == absl::string_view::npos) return false;
  const absl::string_view name = line.substr(0, colon);
  if (!absl::EndsWith(name, "Error") && !absl::EndsWith(name, "Exception")) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '.')) return false;
  }
  return true;
}

}  // namespace

std::string ScriptErrorForClient(absl::string_view what) {
  std::vector<absl::string_view> lines = absl::StrSplit(what, '\n');
  // An interpreter error: tracebacks of the serialized and the original code (with the
  // author's file names), then the cause. Keep the cause and what follows it.
  if (what.find("Traceback of TorchScript") != absl::string_view::npos) {
    for (size_t i = lines.size(); i-- > 0;) {
      if (!IsCauseLine(lines[i])) continue;
      std::vector<absl::string_view> cause;
      for (size_t j = i; j < lines.size(); ++j) {
        absl::string_view l = absl::StripAsciiWhitespace(lines[j]);
        if (!l.empty()) cause.push_back(l);
      }
      return absl::StrJoin(cause, " ");
    }
  }
  // Any other LibTorch error: its first line (the rest is a C++ backtrace).
  for (absl::string_view l : lines) {
    l = absl::StripAsciiWhitespace(l);
    if (!l.empty()) return std::string(l);
  }
  return "unknown error";
}

int DecodedFrames(const LatentModuleConfig& config, int latent_frames) {
  return config.causal_first_frame ? 1 + config.temporal_factor * (latent_frames - 1)
                                   : config.temporal_factor * latent_frames;
}

// One loaded module: its name as the manifest spells it (for messages), the handle (copies
// share parameters and methods) and the dtype its weights run in.
struct LatentModules::Module {
  std::string name;
  torch::jit::Module module;
  at::ScalarType dtype = at::kFloat;

  // forward(inputs) -> one tensor. A raising forward is FAILED_PRECONDITION naming the
  // inputs (`described`); its full message goes to stderr only.
  absl::StatusOr<torch::Tensor> Forward(std::vector<c10::IValue> inputs,
                                        const std::string& described) const {
    std::string full;
    try {
      torch::NoGradGuard no_grad;
      torch::jit::Module handle = module;
      c10::IValue out = handle.forward(std::move(inputs));
      if (!out.isTensor()) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": forward for ", described,
                                                       " returned ", out.tagKind(),
                                                       "; expected one Tensor"));
      }
      return out.toTensor();
    } catch (const c10::Error& e) {
      full = e.what_without_backtrace();
    } catch (const std::exception& e) {
      full = e.what();
    }
    std::cerr << "tpdiff: " << name << ": forward for " << described << " failed:\n"
              << full << "\n";
    return absl::FailedPreconditionError(absl::StrCat(name, ": forward for ", described,
                                                      " failed: ", ScriptErrorForClient(full)));
  }
};

LatentModules::LatentModules(LatentModuleConfig config, torch::Device device)
    : config_(std::move(config)), device_(device) {}

absl::StatusOr<std::shared_ptr<const LatentModules>> LatentModules::Load(
    const LatentModuleConfig& config, torch::Device device) {
  std::shared_ptr<LatentModules> m(new LatentModules(config, device));
  if (device.is_cuda()) {
    // TF32 tensor-core matmuls and convolutions: the float32 modules' speed on Ampere and
    // later, at the precision diffusion models are trained with.
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }
  struct Source {
    const char* name;
    const std::string& file;
    spec::ModuleDtype dtype;
    size_t inputs;
    const char* signature;
    std::shared_ptr<Module>* slot;
  };
  const Source sources[] = {
      {"text_encoder", config.text_encoder_file, config.text_encoder_dtype, 2,
       "forward(tokens, mask)", &m->text_encoder_},
      {"denoiser", config.denoiser_file, config.denoiser_dtype, 5,
       "forward(latents, timestep, stage, context, mask)", &m->denoiser_},
      {"vae", config.vae_file, config.vae_dtype, 1, "forward(latents)", &m->vae_},
  };
  for (const Source& s : sources) {
    auto module = std::make_shared<Module>();
    module->name = s.name;
    // The CPU always runs float32: half-precision CPU kernels are slow or missing.
    module->dtype = device.is_cuda() ? ScalarType(s.dtype) : at::kFloat;
    std::error_code ec;
    if (!fs::is_regular_file(s.file, ec)) {
      return absl::NotFoundError(absl::StrCat(s.name, ".file: ", s.file, ": no such file"));
    }
    std::string error;
    try {
      module->module = torch::jit::load(s.file, device);
      module->module.eval();
      // Only floating-point weights change dtype; integer buffers (position ids, say) keep
      // theirs, which torch::jit::Module::to(dtype) would not.
      if (module->dtype != at::kFloat) {
        torch::NoGradGuard no_grad;
        for (torch::Tensor p : module->module.parameters()) {
          if (p.is_floating_point()) p.set_data(p.to(module->dtype));
        }
        for (torch::Tensor b : module->module.buffers()) {
          if (b.is_floating_point()) b.set_data(b.to(module->dtype));
        }
      }
    } catch (const c10::Error& e) {
      error = e.what_without_backtrace();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      std::cerr << "tpdiff: " << s.name << ": loading " << s.file << " failed:\n" << error << "\n";
      return absl::InvalidArgumentError(absl::StrCat(s.name, ".file: ", s.file,
                                                     " is not a TorchScript module: ",
                                                     ScriptErrorForClient(error)));
    }
    auto method = module->module.find_method("forward");
    if (!method) {
      return absl::InvalidArgumentError(
          absl::StrCat(s.name, ": the module has no forward; expected ", s.signature));
    }
    const c10::FunctionSchema& schema = method->function().getSchema();
    const auto& args = schema.arguments();  // args[0] is self
    std::vector<std::string> names;
    for (size_t i = 1; i < args.size(); ++i) names.push_back(args[i].name());
    if (args.size() != s.inputs + 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          s.name, ": forward(", absl::StrJoin(names, ", "), ") has ", names.size(),
          " inputs; expected ", s.signature, " with ", s.inputs, " Tensor inputs"));
    }
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i].type()->kind() != c10::TypeKind::TensorType) {
        return absl::InvalidArgumentError(absl::StrCat(
            s.name, ": forward input \"", args[i].name(), "\" has type ", args[i].type()->str(),
            "; expected ", s.signature, " with Tensor inputs"));
      }
    }
    *s.slot = std::move(module);
  }

  const int channels = config.latent_channels;
  auto per_channel = [&](const std::vector<double>& values,
                         const char* field) -> absl::StatusOr<torch::Tensor> {
    if (values.size() != 1 && values.size() != static_cast<size_t>(channels)) {
      return absl::InvalidArgumentError(absl::StrCat("vae.", field, ": ", values.size(),
                                                     " values; expected 1 or latent_channels (",
                                                     channels, ")"));
    }
    torch::Tensor t = torch::tensor(values, torch::kDouble).to(torch::kFloat);
    if (values.size() == 1) t = t.expand({channels}).contiguous();
    return t.view({1, channels, 1, 1, 1}).to(device);
  };
  absl::StatusOr<torch::Tensor> scale = per_channel(config.scale, "scale");
  if (!scale.ok()) return scale.status();
  absl::StatusOr<torch::Tensor> shift = per_channel(config.shift, "shift");
  if (!shift.ok()) return shift.status();
  m->scale_ = *scale;
  m->shift_ = *shift;
  TPDIFF_RETURN_IF_ERROR(m->Check());
  return std::shared_ptr<const LatentModules>(std::move(m));
}

absl::StatusOr<torch::Tensor> LatentModules::EncodeText(const torch::Tensor& tokens,
                                                        const torch::Tensor& mask) const {
  const std::string described = absl::StrCat("tokens ", Shape(tokens));
  absl::StatusOr<torch::Tensor> out = text_encoder_->Forward(
      {tokens.to(device_, torch::kLong), mask.to(device_, torch::kLong)}, described);
  if (!out.ok()) return out.status();
  const std::vector<int64_t> want = {tokens.size(0), tokens.size(1), config_.context_dim};
  if (out->sizes() != c10::IntArrayRef(want) || !out->is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text_encoder: output ", Shape(*out), " ", c10::toString(out->scalar_type()), " for ",
        described, "; expected ", Shape(want), " floating point (text_encoder.dim ",
        config_.context_dim, ")"));
  }
  return out->to(device_, torch::kFloat);
}

absl::StatusOr<torch::Tensor> LatentModules::Denoise(const torch::Tensor& latents,
                                                     const torch::Tensor& timestep,
                                                     const torch::Tensor& stage,
                                                     const torch::Tensor& context,
                                                     const torch::Tensor& mask) const {
  const at::ScalarType dt = denoiser_->dtype;
  std::string described = absl::StrCat("latents ", Shape(latents));
  if (stage.numel() > 0) absl::StrAppend(&described, " at stage ", stage[0].item<int64_t>());
  absl::StatusOr<torch::Tensor> out = denoiser_->Forward(
      {latents.to(device_, dt), timestep.to(device_, dt), stage.to(device_, torch::kLong),
       context.to(device_, dt), mask.to(device_, torch::kLong)},
      described);
  if (!out.ok()) return out.status();
  if (out->sizes() != latents.sizes() || !out->is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "denoiser: output ", Shape(*out), " ", c10::toString(out->scalar_type()), " for ",
        described, "; expected ", Shape(latents), " floating point (the latents' shape)"));
  }
  return out->to(device_, torch::kFloat);
}

absl::StatusOr<torch::Tensor> LatentModules::Decode(const torch::Tensor& z) const {
  const std::string described = absl::StrCat("latents ", Shape(z));
  if (z.dim() != 5 || z.size(1) != config_.latent_channels) {
    return absl::InvalidArgumentError(absl::StrCat("vae: ", described, "; expected [B, ",
                                                   config_.latent_channels, ", T', h, w]"));
  }
  const torch::Tensor input = (z.to(device_, torch::kFloat) / scale_ + shift_).to(vae_->dtype);
  absl::StatusOr<torch::Tensor> out = vae_->Forward({input}, described);
  if (!out.ok()) return out.status();
  const std::vector<int64_t> want = {
      z.size(0), 3, DecodedFrames(config_, static_cast<int>(z.size(2))),
      z.size(3) * config_.spatial_factor, z.size(4) * config_.spatial_factor};
  if (out->sizes() != c10::IntArrayRef(want) || !out->is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vae: output ", Shape(*out), " ", c10::toString(out->scalar_type()), " for ",
        described, "; expected ", Shape(want), " floating point (temporal_factor ",
        config_.temporal_factor, config_.causal_first_frame ? " with a causal first frame" : "",
        ", spatial_factor ", config_.spatial_factor, ")"));
  }
  return out->to(device_, torch::kFloat);
}

absl::Status LatentModules::Check() const {
  if (config_.stage_latent_frames.empty()) {
    return absl::InvalidArgumentError("stages: no stage latent frame counts");
  }
  const auto longs = torch::TensorOptions(device_).dtype(torch::kLong);
  const int64_t len = config_.max_tokens;
  // A full prompt and an empty one (EOS only), as guidance encodes them.
  torch::Tensor tokens = torch::ones({2, len}, longs);
  torch::Tensor mask = torch::zeros({2, len}, longs);
  mask[0].fill_(1);
  mask[1][0] = 1;
  absl::StatusOr<torch::Tensor> context = EncodeText(tokens, mask);
  if (!context.ok()) return context.status();
  const auto floats = torch::TensorOptions(device_).dtype(torch::kFloat);
  const int stages = static_cast<int>(config_.stage_latent_frames.size());
  for (int k = 1; k <= stages; ++k) {
    torch::Tensor latents =
        torch::zeros({2, config_.latent_channels, config_.stage_latent_frames[k - 1],
                      config_.latent_height, config_.latent_width},
                     floats);
    absl::StatusOr<torch::Tensor> out =
        Denoise(latents, torch::full({2}, 500.0, floats), torch::full({2}, int64_t{k}, longs),
                *context, mask);
    if (!out.ok()) return out.status();
  }
  for (int frames : {config_.stage_latent_frames.back(), config_.stage_latent_frames.front()}) {
    absl::StatusOr<torch::Tensor> out = Decode(torch::zeros(
        {1, config_.latent_channels, frames, config_.latent_height, config_.latent_width},
        floats));
    if (!out.ok()) return out.status();
  }
  return absl::OkStatus();
}

}  // namespace tpdiff::model
