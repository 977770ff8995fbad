// tpdiff_finetune_fixtures OUT.safetensors: writes what core/ computes for stage-wise training
// (the functions behind tpdiff-train) on the synthetic shapes clips, for the Python
// fine-tuning kit's parity test (python/tests/finetune_parity.py), which must reproduce
// every tensor to 1e-6 and every assignment exactly.
//
// Tensors, for each schedule <p>: v1 fm (flow matching) and vp (vp_eps, continuous) on the
// 16 clip frames; latent flow3c (shift 3, timestep scale 1000, causal first frame: the
// first 13 frames), vpeps (discrete scaled_linear VP, epsilon) and vpvc (the same, v
// prediction, causal):
//   clips                      [6, 3, 16, 32, 32] RenderClipBatch(32x32, 16 frames, seed 11)
//   <p>/windows                [3, 2] float64: (s_k, e_k) for k = 1..3
//   <p>/jumps                  [2, 2] float64: (c, alpha) of the jump into stage k = 1, 2
//   <p>/build<k>/{t,eps,x_t,target,model_target,timestep,noise_level}   BuildTrainingBatch at
//                              stage k for given t and noise; target is the stage target
//                              (flow: x_s - x_e in u units), model_target its
//                              StageGeometry::ModelFromTarget, timestep
//                              NoiseSchedule::ModelTimestep(t), noise_level sigma(t) = b(t)
//   <p>/draw<i>/{seed,weights,stage,t,x_t,target}   DrawTrainingBatch from a CPU generator
//                              seeded with `seed` (weights empty = uniform), alignment on
// and for the alignment solver alone:
//   align<n>/{videos,noise,cost,assignment,aligned}   D_3 of n rendered clips vs randn noise:
//                              cdist cost, MinCostAssignment, AlignNoise
//   random<n>/{cost,assignment}  uniform random costs with many ties (rounded to 0.5)

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <iostream>
#include <string>
#include <vector>

#include "tpdiff/core/alignment.h"
#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/temporal_ops.h"
#include "tpdiff/core/training.h"
#include "tpdiff/model/safetensors.h"
#include "tpdiff/train/synthetic_data.h"

namespace tpdiff::train {
namespace {

constexpr int kBatch = 6;

torch::Tensor Doubles(const std::vector<double>& v) {
  return torch::tensor(v, torch::kDouble).clone();
}

void AddSchedule(const core::NoiseSchedule& schedule, bool causal, const std::string& name,
                 const torch::Tensor& clips, model::NamedTensors& out) {
  core::StagePlanOptions options;
  options.num_frames = static_cast<int>(clips.size(2));
  options.causal_first_frame = causal;
  options.num_stages = 3;
  options.steps_per_stage = {4, 4, 4};
  const core::StagePlan plan = *core::StagePlan::Create(schedule, options);
  std::vector<double> windows, jumps;
  for (int k = 1; k <= 3; ++k) {
    windows.push_back(plan.stage(k).start);
    windows.push_back(plan.stage(k).end);
  }
  for (int k = 1; k <= 2; ++k) {
    const core::JumpCoefficients j =
        core::ComputeJump(plan.schedule(), plan.stage(k + 1), plan.stage(k));
    jumps.push_back(j.c);
    jumps.push_back(j.alpha);
  }
  out.emplace_back(name + "/windows", Doubles(windows).reshape({3, 2}));
  out.emplace_back(name + "/jumps", Doubles(jumps).reshape({2, 2}));

  at::Generator gen = at::detail::createCPUGenerator(100);
  for (int k = 1; k <= 3; ++k) {
    const core::Stage& st = plan.stage(k);
    // Both window ends and points inside.
    torch::Tensor t = st.end + (st.start - st.end) * at::rand({kBatch}, gen, torch::kDouble);
    t[0] = st.end;
    t[1] = st.start;
    std::vector<int64_t> shape(clips.sizes().begin(), clips.sizes().end());
    shape[2] = st.frames;  // with a causal first frame: 1 + pooled frames
    const torch::Tensor eps = at::randn(shape, gen, torch::kFloat);
    const core::TrainingBatch b = core::BuildTrainingBatch(plan, k, clips, t, eps);
    const core::StageGeometry geometry(plan.schedule(), st, k == plan.num_stages());
    std::vector<torch::Tensor> model_target;
    std::vector<double> timestep, noise_level;
    for (int64_t i = 0; i < kBatch; ++i) {
      const double ti = t[i].item<double>();
      noise_level.push_back(plan.schedule().sigma(ti));
      model_target.push_back(
          geometry.ModelFromTarget(b.x_t.narrow(0, i, 1), ti, b.target.narrow(0, i, 1)));
      timestep.push_back(plan.schedule().ModelTimestep(ti));
    }
    const std::string prefix = name + "/build" + std::to_string(k) + "/";
    out.emplace_back(prefix + "t", t);
    out.emplace_back(prefix + "eps", eps);
    out.emplace_back(prefix + "x_t", b.x_t);
    out.emplace_back(prefix + "target", b.target);
    out.emplace_back(prefix + "model_target", torch::cat(model_target));
    out.emplace_back(prefix + "timestep", Doubles(timestep));
    out.emplace_back(prefix + "noise_level", Doubles(noise_level));
  }

  const std::vector<std::vector<double>> weights = {{}, {}, {}, {1, 0, 3}, {1, 1, 2}, {2, 1, 1}};
  for (size_t i = 0; i < weights.size(); ++i) {
    const int64_t seed = 1000 + static_cast<int64_t>(i);
    at::Generator draw_gen = at::detail::createCPUGenerator(seed);
    core::TrainingDrawOptions draw;
    draw.stage_weights = weights[i];
    const core::TrainingBatch b = core::DrawTrainingBatch(plan, clips, draw_gen, draw);
    const std::string prefix = name + "/draw" + std::to_string(i) + "/";
    out.emplace_back(prefix + "seed", torch::tensor({seed}, torch::kLong));
    out.emplace_back(prefix + "weights", Doubles(weights[i]));
    out.emplace_back(prefix + "stage", torch::tensor({static_cast<int64_t>(b.stage)}, torch::kLong));
    out.emplace_back(prefix + "t", b.t);
    out.emplace_back(prefix + "x_t", b.x_t);
    out.emplace_back(prefix + "target", b.target);
  }
}

void AddAlignment(int n, uint64_t seed, model::NamedTensors& out) {
  ClipSpec spec;
  const torch::Tensor videos = core::TemporalDownTimes(RenderClipBatch(spec, n, seed).video, 2);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const torch::Tensor noise = at::randn(videos.sizes(), gen, torch::kFloat);
  const torch::Tensor cost =
      torch::cdist(videos.reshape({n, -1}).to(torch::kDouble), noise.reshape({n, -1}).to(torch::kDouble))
          .contiguous();
  const std::vector<double> flat(cost.data_ptr<double>(), cost.data_ptr<double>() + n * n);
  const std::vector<int> assignment = core::MinCostAssignment(flat, n);
  const std::string prefix = "align" + std::to_string(n) + "/";
  out.emplace_back(prefix + "videos", videos);
  out.emplace_back(prefix + "noise", noise);
  out.emplace_back(prefix + "cost", cost);
  out.emplace_back(prefix + "assignment",
                   torch::tensor(std::vector<int64_t>(assignment.begin(), assignment.end())));
  out.emplace_back(prefix + "aligned", core::AlignNoise(videos, noise));
}

void AddRandomCosts(int n, uint64_t seed, model::NamedTensors& out) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  // Rounded to halves: many equal costs, so tie-breaking must agree too.
  const torch::Tensor cost =
      (at::rand({n, n}, gen, torch::kDouble) * 20).round() / 2;
  const std::vector<double> flat(cost.data_ptr<double>(), cost.data_ptr<double>() + n * n);
  const std::vector<int> assignment = core::MinCostAssignment(flat, n);
  const std::string prefix = "random" + std::to_string(n) + "/";
  out.emplace_back(prefix + "cost", cost);
  out.emplace_back(prefix + "assignment",
                   torch::tensor(std::vector<int64_t>(assignment.begin(), assignment.end())));
}

int Run(const std::string& path) {
  ClipSpec spec;  // 16 frames of 32x32, the bundled model's clips
  const torch::Tensor clips = RenderClipBatch(spec, kBatch, 11).video;
  model::NamedTensors out;
  out.emplace_back("clips", clips);
  AddSchedule(core::NoiseSchedule(core::Parameterization::kFlowMatching), false, "fm", clips,
              out);
  AddSchedule(core::NoiseSchedule(core::Parameterization::kVpEps), false, "vp", clips, out);
  const torch::Tensor causal_clips = clips.narrow(2, 0, 13).contiguous();  // 1 + 12 frames
  spec::ScheduleConfig flow;
  flow.shift = 3.0;
  flow.timestep_scale = 1000.0;
  AddSchedule(*core::NoiseSchedule::FromConfig(flow), true, "flow3c", causal_clips, out);
  spec::ScheduleConfig vp;
  vp.type = core::Parameterization::kVpEps;
  vp.prediction = spec::Prediction::kEpsilon;
  AddSchedule(*core::NoiseSchedule::FromConfig(vp), false, "vpeps", clips, out);
  vp.prediction = spec::Prediction::kV;
  AddSchedule(*core::NoiseSchedule::FromConfig(vp), true, "vpvc", causal_clips, out);
  AddAlignment(8, 21, out);
  AddAlignment(48, 22, out);
  AddRandomCosts(7, 31, out);
  AddRandomCosts(60, 32, out);
  const absl::Status status = model::WriteSafetensors(path, out);
  if (!status.ok()) {
    std::cerr << "tpdiff_finetune_fixtures: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace tpdiff::train

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tpdiff_finetune_fixtures OUT.safetensors\n";
    return 2;
  }
  return tpdiff::train::Run(argv[1]);
}
