#include "tpdiff/train/eval_command.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tpdiff/common/threads.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/core/device.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/core/sampler.h"
#include "tpdiff/train/clip_files.h"
#include "tpdiff/train/eval.h"

namespace tpdiff::train {

namespace {

void PrintSummary(const EvalReport& report, const std::string& out_dir, std::ostream& out) {
  const EvalTotals& t = report.totals;
  out << absl::StrFormat(
      "%s sampler, %d steps: adherence %.3f (single %.3f of %d, two %.3f of %d)  "
      "background %.3f count %.3f color %.3f shape %.3f direction %.3f speed %.3f  "
      "jerk %.3f  frame change %.4f  %.3f s/video\n",
      report.info.sampler, report.info.total_steps, t.adherence, t.single_object_adherence,
      t.single_object_videos, t.two_object_adherence, t.two_object_videos, t.background, t.count,
      t.color, t.shape, t.direction, t.speed, t.jerk, t.frame_change, t.seconds_per_video);
  out << "wrote " << out_dir << "/results.json and " << out_dir << "/grid.png\n";
}

}  // namespace

absl::Status RunEvalCommand(const EvalCommand& c, std::ostream& out, std::ostream& progress) {
  if (c.model_dir.empty() && c.videos_file.empty()) {
    return absl::InvalidArgumentError("--model is required");
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, const std::string*>{"prompts", &c.prompts_file},
        {"out", &c.out_dir}}) {
    if (value->empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, " is required"));
  }
  EvalOptions options;
  options.sampler = c.sampler;
  options.grid_scale = c.grid_scale;
  options.guidance_scale = c.guidance;
  for (absl::string_view part : absl::StrSplit(c.stage_steps, ',', absl::SkipEmpty())) {
    int steps = 0;
    if (!absl::SimpleAtoi(part, &steps)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--stage-steps: '", part, "' is not an integer"));
    }
    options.stage_steps.push_back(steps);
  }
  if (!c.solver.empty()) {
    absl::StatusOr<core::FlowSolver> solver = core::ParseFlowSolver(c.solver);
    if (!solver.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", solver.status().message()));
    }
    options.solver = *solver;
  }
  absl::StatusOr<int> threads = common::IntraOpThreads(c.threads);
  if (!threads.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", threads.status().message()));
  }
  model::ConfigureCpuThreads(*threads);

  std::ifstream in(c.prompts_file);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat("--prompts: cannot read ", c.prompts_file));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::vector<EvalPrompt>> prompts = ParsePromptList(text.str(), c.seed);
  if (!prompts.ok()) return prompts.status();
  if (!c.videos_file.empty()) {
    absl::StatusOr<std::vector<torch::Tensor>> videos = ReadVideosFile(c.videos_file);
    if (!videos.ok()) return videos.status();
    EvalRunInfo info;
    info.model = c.model_dir.empty() ? c.videos_file : c.model_dir;
    info.sampler = c.sampler;
    info.stage_steps = options.stage_steps;
    for (int n : options.stage_steps) info.total_steps += n;
    info.guidance_scale = c.guidance.value_or(1.0);
    info.device = "cpu";
    absl::StatusOr<EvalReport> report =
        ScoreVideos(*videos, *prompts, info, c.out_dir, c.grid_scale);
    if (!report.ok()) return report.status();
    PrintSummary(*report, c.out_dir, out);
    return absl::OkStatus();
  }
  absl::StatusOr<torch::Device> device = core::ResolveDevice(c.device, "--device");
  if (!device.ok()) return device.status();
  auto model = model::LoadModelPackage(c.model_dir, *device);
  if (!model.ok()) return model.status();

  const auto begin = std::chrono::steady_clock::now();
  int adherent = 0;
  auto bar = [&](int done, int total, const EvalVideoResult& r) {
    adherent += r.score.adherent;
    constexpr int kWidth = 30;
    const int filled = done * kWidth / total;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    progress << absl::StrFormat("\r[%s%s] %d/%d  %.2f s/video  adherent %d/%d  eta %.0f s ",
                                std::string(filled, '#'), std::string(kWidth - filled, '.'), done,
                                total, elapsed / done, adherent, done,
                                elapsed / done * (total - done));
    if (done == total) progress << "\n";
    progress.flush();
  };
  absl::StatusOr<EvalReport> report = RunEval(**model, *prompts, options, c.out_dir, bar);
  if (!report.ok()) return report.status();
  PrintSummary(*report, c.out_dir, out);
  return absl::OkStatus();
}

}  // namespace tpdiff::train
