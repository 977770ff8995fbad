#include "tpdiff/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/nn/utils/clip_grad.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/model/safetensors.h"
#include "tpdiff/core/device.h"
#include "tpdiff/core/schedule.h"
#include "tpdiff/core/stage_plan.h"
#include "tpdiff/spec/tokenizer.h"
#include "tpdiff/core/torch_status.h"
#include "tpdiff/core/training.h"
#include "tpdiff/spec/status_macros.h"

namespace tpdiff::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

uint64_t Mix(uint64_t seed, uint64_t salt) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (salt + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string FormatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return absl::StrFormat("%dh%02dm", t / 3600, (t / 60) % 60);
  if (t >= 60) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%ds", t);
}

absl::Status Flag(const char* flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

absl::Status ValidateOptions(const TrainOptions& o) {
  if (o.iters <= 0 && o.minutes <= 0) return Flag("iters", "give --iters or --minutes (or both)");
  if (o.iters < 0) return Flag("iters", "must not be negative");
  if (o.minutes < 0) return Flag("minutes", "must not be negative");
  if (o.batch < 1 || o.batch > 4096)
    return Flag("batch", absl::StrCat(o.batch, " outside [1, 4096]"));
  if (o.mode == TrainMode::kTpdiff &&
      (o.stages < 1 || o.stages > core::StagePlan::kMaxStages || o.stages > o.network.max_stages)) {
    return Flag("stages",
                absl::StrCat(o.stages, " outside [1, ", core::StagePlan::kMaxStages, "]"));
  }
  if (!o.stage_weights.empty()) {
    if (o.mode != TrainMode::kTpdiff) return Flag("stage-weights", "only for --mode tpdiff");
    const std::string error = core::StageWeightsError(o.stage_weights, o.stages);
    if (!error.empty()) return Flag("stage-weights", error);
  }
  if (!(o.lr > 0 && o.lr < 1)) return Flag("lr", absl::StrCat(o.lr, " outside (0, 1)"));
  if (o.warmup < 0) return Flag("warmup", "must not be negative");
  if (!(o.ema_decay >= 0 && o.ema_decay < 1))
    return Flag("ema", absl::StrCat(o.ema_decay, " outside [0, 1)"));
  if (!(o.cond_dropout >= 0 && o.cond_dropout <= 1)) {
    return Flag("cond-dropout", absl::StrCat(o.cond_dropout, " outside [0, 1]"));
  }
  if (o.stop_at_step < 0) return Flag("stop-at-step", "must not be negative");
  if (o.checkpoint_every < 0) return Flag("checkpoint-every", "must not be negative");
  if (o.render_threads < 1 || o.render_threads > 64)
    return Flag("render-threads", "outside [1, 64]");
  if (o.prefetch < 1 || o.prefetch > 256) return Flag("prefetch", "outside [1, 256]");
  if (o.out_dir.empty()) return Flag("out", "must not be empty");
  if (absl::Status s = train::ValidateClipSpec(o.clip); !s.ok()) return s;
  TPDIFF_RETURN_IF_ERROR(o.network.Validate());
  if (o.clip.height % o.network.patch != 0 || o.clip.height > o.network.max_height ||
      o.clip.width % o.network.patch != 0 || o.clip.width > o.network.max_width) {
    return Flag("patch", absl::StrCat("clip ", o.clip.height, "x", o.clip.width,
                                      " does not fit patch ", o.network.patch, " and max size ",
                                      o.network.max_height, "x", o.network.max_width));
  }
  return absl::OkStatus();
}

// The fraction of steps that train stage k.
double StageShare(const TrainOptions& o, int k) {
  const int K = o.mode == TrainMode::kVanilla ? 1 : o.stages;
  if (o.stage_weights.empty() || o.mode == TrainMode::kVanilla) return 1.0 / K;
  double total = 0;
  for (double w : o.stage_weights) total += w;
  return o.stage_weights[k - 1] / total;
}

absl::StatusOr<core::StagePlan> TrainingPlan(const TrainOptions& o) {
  const core::NoiseSchedule schedule(core::Parameterization::kFlowMatching);
  if (o.mode == TrainMode::kVanilla) return core::StagePlan::Vanilla(schedule, o.clip.frames, 30);
  core::StagePlanOptions p;
  p.num_frames = o.clip.frames;
  p.num_stages = o.stages;
  p.steps_per_stage.assign(o.stages, 10);
  auto plan = core::StagePlan::Create(schedule, p);
  if (!plan.ok()) return Flag("stages", std::string(plan.status().message()));
  return plan;
}

std::vector<AdamW::Param> OptimizerParams(model::TpdiffNetImpl& net) {
  std::vector<AdamW::Param> out;
  for (auto& item : net.named_parameters()) {
    const std::string& name = item.key();
    // Decay weight matrices only: not biases, norms, embeddings tables or positions.
    const bool decay = item.value().dim() >= 2 && name.find("embed.weight") == std::string::npos &&
                       name.find("_pos") == std::string::npos;
    out.push_back({name, item.value(), decay});
  }
  return out;
}

torch::Tensor Tokenize(const spec::Tokenizer& tok, const std::vector<std::string>& captions) {
  torch::Tensor ids = torch::zeros(
      {static_cast<int64_t>(captions.size()), spec::Tokenizer::kMaxTokens}, torch::kLong);
  auto acc = ids.accessor<int64_t, 2>();
  for (size_t i = 0; i < captions.size(); ++i) {
    auto encoded = tok.Encode(captions[i]);
    // The renderer's grammar only uses vocabulary words; anything else is a programming error.
    TORCH_CHECK(encoded.ok(), "caption \"", captions[i], "\": ", encoded.status().ToString());
    for (int j = 0; j < spec::Tokenizer::kMaxTokens; ++j) acc[i][j] = (*encoded)[j];
  }
  return ids;
}

void UpdateEma(model::TpdiffNetImpl& ema, model::TpdiffNetImpl& net, double decay) {
  torch::NoGradGuard no_grad;
  auto e = ema.parameters();
  auto p = net.parameters();
  for (size_t i = 0; i < e.size(); ++i) e[i].mul_(decay).add_(p[i].detach(), 1.0 - decay);
}

void CopyParams(model::TpdiffNetImpl& dst, model::TpdiffNetImpl& src) {
  torch::NoGradGuard no_grad;
  auto d = dst.parameters();
  auto s = src.parameters();
  for (size_t i = 0; i < d.size(); ++i) d[i].copy_(s[i]);
}

spec::ModelManifest PackageManifest(const TrainOptions& o, const core::StagePlan& plan) {
  spec::ModelManifest m = model::DefaultBuiltinManifest(o.name);
  m.frames = o.clip.frames;
  m.height = o.clip.height;
  m.width = o.clip.width;
  m.stages = plan.num_stages();
  m.default_stage_steps.assign(plan.num_stages(), plan.num_stages() == 1 ? 30 : 10);
  return m;
}

const char* ModeName(TrainMode m) { return m == TrainMode::kTpdiff ? "tpdiff" : "vanilla"; }

struct LoopState {
  int64_t step = 0;
  int64_t clips = 0;
  double elapsed = 0;  // training seconds over all runs of this job
};

std::string CheckpointDir(const TrainOptions& o) {
  return (fs::path(o.out_dir) / "checkpoint").string();
}

absl::Status SaveCheckpoint(const TrainOptions& o, const LoopState& s, model::TpdiffNetImpl& net,
                            model::TpdiffNetImpl& ema, const AdamW& adam, torch::Generator& gen,
                            torch::Generator* noise_gen) {
  const std::string dir = CheckpointDir(o);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
  model::NamedTensors tensors = model::NetworkState(net, "model.");
  for (auto& t : model::NetworkState(ema, "ema.")) tensors.push_back(std::move(t));
  for (auto& t : adam.State("adam.")) tensors.push_back(std::move(t));
  tensors.emplace_back("rng", gen.get_state());
  if (noise_gen != nullptr) tensors.emplace_back("rng_noise", noise_gen->get_state());
  TPDIFF_RETURN_IF_ERROR(
      model::WriteSafetensors((fs::path(dir) / "state.safetensors").string(), tensors));
  nlohmann::json j = {{"step", s.step},
                      {"clips", s.clips},
                      {"elapsed_seconds", s.elapsed},
                      {"adam_steps", adam.steps()},
                      {"mode", ModeName(o.mode)},
                      {"stages", o.stages},
                      {"batch", o.batch},
                      {"seed", o.seed},
                      {"network", nlohmann::json::parse(o.network.ToJson())}};
  return model::WriteStringToFileAtomic((fs::path(dir) / "state.json").string(), j.dump(2) + "\n");
}

absl::StatusOr<bool> LoadCheckpoint(const TrainOptions& o, LoopState* s, model::TpdiffNetImpl& net,
                                    model::TpdiffNetImpl& ema, AdamW& adam, torch::Generator& gen,
                                    torch::Generator* noise_gen) {
  const fs::path dir = CheckpointDir(o);
  if (!fs::exists(dir / "state.json")) return false;
  auto text = model::ReadFileToString((dir / "state.json").string());
  if (!text.ok()) return text.status();
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::DataLossError("checkpoint state.json: not JSON");
  try {
    if (j.at("mode").get<std::string>() != ModeName(o.mode)) {
      return Flag("resume",
                  absl::StrCat("checkpoint was trained in mode ", j.at("mode").get<std::string>()));
    }
    if (o.mode == TrainMode::kTpdiff && j.at("stages").get<int>() != o.stages) {
      return Flag("resume", absl::StrCat("checkpoint has ", j.at("stages").get<int>(), " stages"));
    }
    if (j.at("network").dump() != nlohmann::json::parse(o.network.ToJson()).dump()) {
      return Flag("resume",
                  "checkpoint network " + j.at("network").dump() + " differs from the flags");
    }
    s->step = j.at("step").get<int64_t>();
    s->clips = j.at("clips").get<int64_t>();
    s->elapsed = j.at("elapsed_seconds").get<double>();
    auto st = model::ReadSafetensors((dir / "state.safetensors").string());
    if (!st.ok()) return st.status();
    TPDIFF_RETURN_IF_ERROR(model::LoadNetworkState(net, st->tensors, "model."));
    TPDIFF_RETURN_IF_ERROR(model::LoadNetworkState(ema, st->tensors, "ema."));
    TPDIFF_RETURN_IF_ERROR(adam.LoadState(st->tensors, "adam.", j.at("adam_steps").get<int64_t>()));
    auto rng = st->tensors.find("rng");
    if (rng == st->tensors.end()) return absl::DataLossError("checkpoint: rng state missing");
    gen.set_state(rng->second);
    if (noise_gen != nullptr) {
      auto noise_rng = st->tensors.find("rng_noise");
      if (noise_rng == st->tensors.end()) {
        return absl::DataLossError(
            "checkpoint: rng_noise state missing (saved on another device?)");
      }
      noise_gen->set_state(noise_rng->second);
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint state.json: ", e.what()));
  }
  return true;
}

// On an accelerator the noise is drawn there (TrainingDrawOptions::noise_generator) from the
// device's default generator, seeded here; on the CPU none (the CPU generator draws it).
std::optional<torch::Generator> DeviceNoiseGenerator(const torch::Device& device, uint64_t seed) {
  if (device.is_cpu()) return std::nullopt;
  torch::Generator gen = at::globalContext().defaultGenerator(device);
  gen.set_current_seed(seed);
  return gen;
}

// Loads a package's weights into `net`; returns the parameters the package did not have.
absl::StatusOr<std::vector<std::string>> WarmStart(const std::string& package_dir,
                                                   model::TpdiffNetImpl& net) {
  auto manifest = spec::ReadManifest(package_dir);
  if (!manifest.ok()) return Flag("init-from", std::string(manifest.status().message()));
  if (manifest->kind != "builtin") {
    return Flag("init-from", absl::StrCat(package_dir, " is a ", manifest->kind,
                                          " package; only builtin weights can seed training"));
  }
  auto weights =
      model::ReadSafetensors((fs::path(package_dir) / manifest->weights_file).string());
  if (!weights.ok()) return Flag("init-from", std::string(weights.status().message()));
  std::vector<std::string> missing;
  if (absl::Status s = model::LoadNetworkState(net, weights->tensors, "", &missing); !s.ok()) {
    return Flag("init-from", std::string(s.message()));
  }
  return missing;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

uint64_t DataSeed(uint64_t seed, int64_t step) { return Mix(seed, static_cast<uint64_t>(step)); }

double LearningRateFactor(int64_t step, int64_t warmup, double progress, double min_fraction) {
  const double w = warmup > 0 ? std::min(1.0, static_cast<double>(step + 1) / warmup) : 1.0;
  const double p = std::clamp(progress, 0.0, 1.0);
  const double cosine = min_fraction + (1 - min_fraction) * 0.5 * (1 + std::cos(M_PI * p));
  return w * cosine;
}

AdamW::AdamW(std::vector<Param> params, double beta1, double beta2, double eps)
    : params_(std::move(params)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  for (const Param& p : params_) {
    m_.push_back(torch::zeros_like(p.param));
    v_.push_back(torch::zeros_like(p.param));
  }
}

void AdamW::Step(double lr, double weight_decay) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double bc1 = 1 - std::pow(beta1_, static_cast<double>(steps_));
  const double bc2 = 1 - std::pow(beta2_, static_cast<double>(steps_));
  const double step_size = lr / bc1;
  const double sqrt_bc2 = std::sqrt(bc2);
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i].param;
    const torch::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (params_[i].decay && weight_decay > 0) p.mul_(1 - lr * weight_decay);
    m_[i].mul_(beta1_).add_(g, 1 - beta1_);
    v_[i].mul_(beta2_).addcmul_(g, g, 1 - beta2_);
    const torch::Tensor denom = (v_[i].sqrt() / sqrt_bc2).add_(eps_);
    p.addcdiv_(m_[i], denom, -step_size);
  }
}

model::NamedTensors AdamW::State(const std::string& prefix) const {
  model::NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(prefix + "m." + params_[i].name, m_[i]);
    out.emplace_back(prefix + "v." + params_[i].name, v_[i]);
  }
  return out;
}

absl::Status AdamW::LoadState(const std::map<std::string, torch::Tensor>& tensors,
                              const std::string& prefix, int64_t steps) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [kind, dst] :
         {std::pair<const char*, torch::Tensor*>{"m.", &m_[i]}, {"v.", &v_[i]}}) {
      const std::string name = prefix + kind + params_[i].name;
      auto it = tensors.find(name);
      if (it == tensors.end() || it->second.sizes() != dst->sizes()) {
        return absl::DataLossError(
            absl::StrCat("checkpoint: optimizer tensor ", name, " missing or mis-shaped"));
      }
      dst->copy_(it->second);
    }
  }
  steps_ = steps;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Prefetcher

struct ClipPrefetcher::State {
  train::ClipSpec spec;
  int batch;
  uint64_t seed;
  int capacity;
  std::mutex mu;
  std::condition_variable changed;
  std::map<int64_t, train::ClipBatch> ready;  // guarded by mu
  int64_t next_to_render;                    // guarded by mu
  int64_t next_to_consume;                   // guarded by mu
  bool stop = false;                         // guarded by mu
  std::vector<std::thread> workers;

  void Work() {
    for (;;) {
      int64_t step;
      {
        std::unique_lock<std::mutex> lock(mu);
        changed.wait(lock, [&] { return stop || next_to_render < next_to_consume + capacity; });
        if (stop) return;
        step = next_to_render++;
      }
      train::ClipBatch b = train::RenderClipBatch(spec, batch, DataSeed(seed, step));
      {
        std::lock_guard<std::mutex> lock(mu);
        ready.emplace(step, std::move(b));
      }
      changed.notify_all();
    }
  }
};

ClipPrefetcher::ClipPrefetcher(train::ClipSpec spec, int batch, uint64_t seed, int64_t first_step,
                               int threads, int capacity)
    : state_(new State) {
  state_->spec = spec;
  state_->batch = batch;
  state_->seed = seed;
  state_->capacity = std::max(1, capacity);
  state_->next_to_render = first_step;
  state_->next_to_consume = first_step;
  for (int i = 0; i < std::max(1, threads); ++i) {
    state_->workers.emplace_back([s = state_.get()] { s->Work(); });
  }
}

ClipPrefetcher::~ClipPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->changed.notify_all();
  for (auto& t : state_->workers) t.join();
}

train::ClipBatch ClipPrefetcher::Next() {
  const auto start = Clock::now();
  std::unique_lock<std::mutex> lock(state_->mu);
  const int64_t step = state_->next_to_consume;
  state_->changed.wait(lock, [&] { return state_->ready.count(step) > 0; });
  train::ClipBatch b = std::move(state_->ready.at(step));
  state_->ready.erase(step);
  ++state_->next_to_consume;
  lock.unlock();
  state_->changed.notify_all();
  wait_seconds_ += Seconds(start, Clock::now());
  return b;
}

// ---------------------------------------------------------------------------------------------
// Training loop

absl::Status RunTraining(const TrainOptions& options_in, std::ostream* progress) {
  TrainOptions o = options_in;
  auto tokenizer = spec::Tokenizer::FromWords(spec::ShapesVocabulary());
  if (!tokenizer.ok()) return tokenizer.status();
  o.network.vocab_size = tokenizer->vocab_size();
  TPDIFF_RETURN_IF_ERROR(ValidateOptions(o));
  auto device = core::ResolveDevice(o.device, "--device");
  if (!device.ok()) return device.status();
  auto plan = TrainingPlan(o);
  if (!plan.ok()) return plan.status();
  const int threads = model::ConfigureCpuThreads(o.threads);
  if (device->is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);

  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(o.out_dir, ": ", ec.message()));

  torch::manual_seed(o.seed);  // parameter initialisation
  model::TpdiffNet net(o.network);
  model::TpdiffNet ema(o.network);
  CopyParams(*ema, *net);
  net->to(*device);
  ema->to(*device);
  net->train();
  ema->eval();
  for (auto& p : ema->parameters()) p.set_requires_grad(false);
  AdamW adam(OptimizerParams(*net));
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(Mix(o.seed, 0xA11CE));
  std::optional<torch::Generator> device_gen = DeviceNoiseGenerator(*device, Mix(o.seed, 0xE95));
  torch::Generator* noise_gen = device_gen ? &*device_gen : nullptr;

  LoopState s;
  bool resumed_checkpoint = false;
  if (o.resume) {
    auto resumed = LoadCheckpoint(o, &s, *net, *ema, adam, gen, noise_gen);
    if (!resumed.ok()) return resumed.status();
    resumed_checkpoint = *resumed;
    if (progress && *resumed) {
      *progress << "resumed from " << CheckpointDir(o) << " at step " << s.step << " ("
                << FormatDuration(s.elapsed) << " trained)\n";
    }
  }
  if (!resumed_checkpoint && !o.init_from.empty()) {
    auto kept = WarmStart(o.init_from, *net);
    if (!kept.ok()) return kept.status();
    CopyParams(*ema, *net);
    if (progress) {
      *progress << "initialised from " << o.init_from << "; kept initial values for: "
                << (kept->empty() ? "(none)" : absl::StrJoin(*kept, ", ")) << "\n";
    }
  }
  const int64_t params = net->ParameterCount();
  if (progress) {
    *progress << "tpdiff-train: mode " << ModeName(o.mode) << ", " << plan->num_stages()
              << " stage(s)"
              << (o.stage_weights.empty()
                      ? std::string()
                      : absl::StrCat(" weighted ", absl::StrJoin(o.stage_weights, ":")))
              << ", align " << (o.align_noise ? "on" : "off") << ", batch " << o.batch
              << ", device " << device->str() << ", threads " << threads << "\n"
              << "network " << o.network.ToJson() << "\n"
              << params << " parameters, "
              << absl::StrFormat("%.2f", model::EstimateForwardFlops(o.network, o.clip.frames,
                                                                    o.clip.height, o.clip.width) /
                                             1e9)
              << " GFLOP forward per full-rate clip\n";
  }

  const std::string log_path = (fs::path(o.out_dir) / "train_log.csv").string();
  const bool log_exists = fs::exists(log_path);
  std::ofstream log(log_path, o.resume ? std::ios::app : std::ios::trunc);
  if (!log) return absl::InternalError(absl::StrCat(log_path, ": cannot open"));
  if (!o.resume || !log_exists) log << "step,loss,seconds,stage,lr,clips\n";

  const spec::ModelManifest manifest = PackageManifest(o, *plan);
  auto write_outputs = [&]() -> absl::Status {
    TPDIFF_RETURN_IF_ERROR(model::WriteModelPackage(o.out_dir, manifest, *tokenizer, *ema));
    return SaveCheckpoint(o, s, *net, *ema, adam, gen, noise_gen);
  };

  ClipPrefetcher data(o.clip, o.batch, o.seed, s.step, o.render_threads, o.prefetch);
  const bool tty = progress == &std::cerr ? isatty(STDERR_FILENO) : false;
  const double budget_s = o.minutes * 60.0;
  core::TrainingDrawOptions draw;
  draw.align_noise = o.align_noise;
  draw.stage_weights = o.stage_weights;
  draw.noise_generator = noise_gen;
  double smooth_loss = -1;
  const auto run_start = Clock::now();
  const double elapsed_at_start = s.elapsed;
  auto last_print = run_start;
  int64_t last_print_step = s.step, last_print_clips = s.clips;
  double lr = 0;

  auto done = [&] {
    return (o.iters > 0 && s.step >= o.iters) || (budget_s > 0 && s.elapsed >= budget_s) ||
           (o.stop_at_step > 0 && s.step >= o.stop_at_step);
  };
  while (!done()) {
    train::ClipBatch clips = data.Next();
    auto result = core::TorchCall("training step", [&] {
      const torch::Tensor x0 = clips.video.to(*device);
      torch::Tensor tokens = Tokenize(*tokenizer, clips.captions);
      if (o.cond_dropout > 0) {
        const torch::Tensor drop = at::rand({o.batch}, gen) < o.cond_dropout;
        tokens.masked_fill_(drop.unsqueeze(1), 0);
      }
      tokens = tokens.to(*device);
      const core::TrainingBatch tb = core::DrawTrainingBatch(*plan, x0, gen, draw);
      const torch::Tensor pred = net->forward(tb.x_t, tb.t, tb.stage_ids, tokens);
      const torch::Tensor loss = (pred - tb.target).pow(2).mean();
      for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
      loss.backward();
      if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(net->parameters(), o.grad_clip);
      const double progress_frac =
          std::max(o.iters > 0 ? static_cast<double>(s.step) / o.iters : 0.0,
                   budget_s > 0 ? s.elapsed / budget_s : 0.0);
      lr = o.lr * LearningRateFactor(s.step, o.warmup, progress_frac, o.min_lr_fraction);
      adam.Step(lr, o.weight_decay);
      // EMA warm-up: early averages should not be dominated by the random initialisation.
      const double decay = std::min(o.ema_decay, (1.0 + s.step) / (10.0 + s.step));
      UpdateEma(*ema, *net, decay);
      return std::make_pair(loss.item<double>(), tb.stage);
    });
    if (!result.ok()) return result.status();
    const auto [loss, stage] = *result;
    ++s.step;
    s.clips += o.batch;
    s.elapsed = elapsed_at_start + Seconds(run_start, Clock::now());
    if (!std::isfinite(loss)) {
      return absl::InternalError(absl::StrCat("loss became ", loss, " at step ", s.step,
                                              "; lower --lr or check the data"));
    }
    smooth_loss = smooth_loss < 0 ? loss : 0.98 * smooth_loss + 0.02 * loss;
    log << s.step << "," << loss << "," << absl::StrFormat("%.3f", s.elapsed) << "," << stage << ","
        << lr << "," << s.clips << "\n";

    const auto now = Clock::now();
    if (progress && (Seconds(last_print, now) >= o.progress_interval_s || done())) {
      const double dt = Seconds(last_print, now);
      const double its = (s.step - last_print_step) / std::max(dt, 1e-9);
      const double cps = (s.clips - last_print_clips) / std::max(dt, 1e-9);
      double eta = std::numeric_limits<double>::infinity();
      if (o.iters > 0 && its > 0) eta = (o.iters - s.step) / its;
      if (budget_s > 0) eta = std::min(eta, budget_s - s.elapsed);
      const std::string line = absl::StrFormat(
          "step %d%s  loss %.4f (avg %.4f)  %.2f it/s  %.1f clips/s  lr %.2e  elapsed %s  ETA %s  "
          "data-wait %.0fs",
          s.step, o.iters > 0 ? absl::StrCat("/", o.iters) : "", loss, smooth_loss, its, cps, lr,
          FormatDuration(s.elapsed), FormatDuration(eta), data.wait_seconds());
      if (tty) {
        *progress << "\r" << line << "\x1b[K" << std::flush;
      } else {
        *progress << line << "\n" << std::flush;
      }
      last_print = now;
      last_print_step = s.step;
      last_print_clips = s.clips;
    }
    if (o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0 && !done()) {
      log.flush();
      TPDIFF_RETURN_IF_ERROR(write_outputs());
      if (progress && tty) *progress << "\n";
      if (progress) *progress << "checkpoint at step " << s.step << " -> " << o.out_dir << "\n";
    }
  }
  log.flush();
  TPDIFF_RETURN_IF_ERROR(write_outputs());
  if (progress) {
    if (tty) *progress << "\n";
    *progress << absl::StrFormat("done: %d steps, %d clips, %s; package %s (EMA weights)\n", s.step,
                                 s.clips, FormatDuration(s.elapsed), o.out_dir);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Cost measurement

absl::Status MeasureCosts(const TrainOptions& options_in, int repeats, std::ostream& out) {
  TrainOptions o = options_in;
  o.network.vocab_size = static_cast<int>(spec::ShapesVocabulary().size()) + 1;
  if (o.iters <= 0 && o.minutes <= 0) o.iters = 1;
  TPDIFF_RETURN_IF_ERROR(ValidateOptions(o));
  auto device = core::ResolveDevice(o.device, "--device");
  if (!device.ok()) return device.status();
  const int threads = model::ConfigureCpuThreads(o.threads);
  if (device->is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);
  auto plan = TrainingPlan(o);
  if (!plan.ok()) return plan.status();
  const int T = o.clip.frames, H = o.clip.height, W = o.clip.width;
  try {
    torch::manual_seed(o.seed);
    model::TpdiffNet net(o.network);
    net->to(*device);
    const auto fopts = torch::TensorOptions(*device).dtype(torch::kFloat);
    const auto lopts = torch::TensorOptions(*device).dtype(torch::kLong);
    out << "network " << o.network.ToJson() << "\n";
    out << "parameters: " << net->ParameterCount() << "\n";
    for (int k = plan->num_stages(); k >= 1; --k) {
      const int frames = plan->stage(k).frames;
      out << absl::StrFormat(
          "forward FLOPs per clip at %2d frames: %.3f GFLOP (train step ~3x: %.2f)\n", frames,
          model::EstimateForwardFlops(o.network, frames, H, W) / 1e9,
          3 * model::EstimateForwardFlops(o.network, frames, H, W) / 1e9);
    }
    {  // Sampling cost: a guided batch of 2 (cond + uncond) at full frame rate.
      torch::NoGradGuard no_grad;
      net->eval();
      const torch::Tensor x = torch::randn({2, 3, T, H, W}, fopts);
      const torch::Tensor t = torch::full({2}, 0.5f, fopts);
      const torch::Tensor st = torch::ones({2}, lopts);
      const torch::Tensor tok = torch::zeros({2, spec::Tokenizer::kMaxTokens}, lopts);
      net->forward(x, t, st, tok).sum().item<float>();
      const auto a = Clock::now();
      for (int i = 0; i < repeats; ++i) net->forward(x, t, st, tok).sum().item<float>();
      out << absl::StrFormat("forward batch 2 at %dx%dx%d: %.1f ms\n", T, H, W,
                             1e3 * Seconds(a, Clock::now()) / repeats);
      net->train();
    }
    AdamW adam(OptimizerParams(*net));
    torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
    std::optional<torch::Generator> device_gen = DeviceNoiseGenerator(*device, 1);
    train::ClipBatch clips = train::RenderClipBatch(o.clip, o.batch, 1);
    const torch::Tensor x0 = clips.video.to(*device);
    const torch::Tensor tokens = torch::randint(1, o.network.vocab_size, {o.batch, 12}, lopts);
    double mean_step = 0;
    for (int k = plan->num_stages(); k >= 1; --k) {
      core::TrainingDrawOptions draw;
      draw.align_noise = o.align_noise;
      draw.stage = k;
      draw.noise_generator = device_gen ? &*device_gen : nullptr;
      auto step = [&] {
        const core::TrainingBatch tb = core::DrawTrainingBatch(*plan, x0, gen, draw);
        const torch::Tensor loss =
            (net->forward(tb.x_t, tb.t, tb.stage_ids, tokens) - tb.target).pow(2).mean();
        for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
        loss.backward();
        torch::nn::utils::clip_grad_norm_(net->parameters(), 1.0);
        adam.Step(1e-4, 0.01);
        return loss.item<double>();
      };
      step();
      const auto a = Clock::now();
      for (int i = 0; i < repeats; ++i) step();
      const double sec = Seconds(a, Clock::now()) / repeats;
      mean_step += sec * StageShare(o, k);
      const int frames = plan->stage(k).frames;
      out << absl::StrFormat(
          "train step stage %d (%2d frames), batch %d: %.3f s  = %.1f clips/s  (%.1f GFLOP/s)\n", k,
          frames, o.batch, sec, o.batch / sec,
          3.0 * model::EstimateForwardFlops(o.network, frames, H, W) * o.batch / sec / 1e9);
    }
    out << absl::StrFormat(
        "mean over stages (stages drawn %s): %.3f s/step = %.1f clips/s\n",
        o.stage_weights.empty() ? "uniformly"
                                : absl::StrCat("with weights ", absl::StrJoin(o.stage_weights, ":")),
        mean_step, o.batch / mean_step);
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("measure: ", core::TorchErrorSummary(e)));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("measure: ", e.what()));
  }
}

}  // namespace tpdiff::train
