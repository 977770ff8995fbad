#include "model_bench.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "svg_chart.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/train/eval.h"

// Shared with `sampler` (sampler_bench.cc).
ABSL_DECLARE_FLAG(std::optional<double>, guidance);
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(std::string, svg);

ABSL_FLAG(std::string, tpdiff_model, "models/shapes-tpdiff",
          "models: the TPDiff-trained package (sampled with its default stage plan)");
ABSL_FLAG(std::string, vanilla_model, "",
          "models: the vanilla-trained package of the same network (1 stage; its default steps)");
ABSL_FLAG(std::string, prompts, "models/eval/prompts-single.txt",
          "models: prompt list (caption or caption<TAB>seed per line), as tpdiff-eval's");
ABSL_FLAG(int, max_prompts, 0, "models: use only the first N prompts (0 = all)");
ABSL_FLAG(uint64_t, seed, 1000000000, "models: seed of prompt lines without one (+ index)");
ABSL_FLAG(std::string, out, "out/bench-models",
          "models: folder for each row's tpdiff-eval output (frames, grid.png, results.json)");
ABSL_FLAG(std::string, json, "", "models: write the figures as JSON to this file");
ABSL_FLAG(bool, sampler_row, true,
          "models: also sample the TPDiff package with the vanilla sampler at the vanilla "
          "package's steps (separates what the sampler saves from what the training changes)");
ABSL_FLAG(int, warmup, 1, "models: untimed warm-up videos per row before the timed ones");

namespace tpdiff::bench {
namespace {

namespace fs = std::filesystem;

// The targets: TPDiff at least 1.6x faster than vanilla per video, adherence at most
// 2 points (percentage points of the adherent fraction) lower.
constexpr double kSpeedupTarget = 1.6;
constexpr double kAdherenceDropTarget = 2.0;

struct Row {
  std::string name;   // "tpdiff", "vanilla", "tpdiff-pkg+vanilla-sampler"
  std::string label;  // for people
  model::LoadedModel* model = nullptr;
  std::string package_dir;
  train::EvalOptions options;
  std::unique_ptr<train::EvalRunner> runner;
  train::EvalReport report;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / v.size();
}

std::vector<double> Seconds(const train::EvalReport& r) {
  std::vector<double> s;
  for (const train::EvalVideoResult& v : r.videos) s.push_back(v.seconds);
  return s;
}

std::string PlanText(const std::vector<int>& steps) { return absl::StrJoin(steps, ","); }

int Fail(const std::string& message) {
  std::fprintf(stderr, "tpdiff-bench models: %s\n", message.c_str());
  return 2;
}

nlohmann::json RowJson(const Row& row, const std::string& eval_out) {
  const train::EvalTotals& t = row.report.totals;
  const std::vector<double> seconds = Seconds(row.report);
  return {{"name", row.name},
          {"label", row.label},
          {"package", row.package_dir},
          {"model", row.report.info.model},
          {"sampler", row.report.info.sampler},
          {"stage_steps", row.report.info.stage_steps},
          {"total_steps", row.report.info.total_steps},
          {"guidance", row.report.info.guidance_scale},
          {"videos", t.videos},
          {"seconds_per_video_mean", Mean(seconds)},
          {"seconds_per_video_median", Median(seconds)},
          {"adherence", t.adherence},
          {"attributes", train::AttributesJson(t)},
          {"smoothness", {{"jerk", t.jerk}, {"frame_change", t.frame_change}}},
          {"eval_out", eval_out}};
}

}  // namespace

int RunModelBench() {
  const std::string tpdiff_dir = absl::GetFlag(FLAGS_tpdiff_model);
  const std::string vanilla_dir = absl::GetFlag(FLAGS_vanilla_model);
  if (vanilla_dir.empty()) return Fail("--vanilla_model is required (tpdiff-train --mode vanilla)");
  const int threads = model::ConfigureCpuThreads(absl::GetFlag(FLAGS_threads));

  std::ifstream in(absl::GetFlag(FLAGS_prompts));
  if (!in) return Fail("--prompts: cannot read " + absl::GetFlag(FLAGS_prompts));
  std::stringstream text;
  text << in.rdbuf();
  auto prompts = train::ParsePromptList(text.str(), absl::GetFlag(FLAGS_seed));
  if (!prompts.ok()) return Fail(std::string(prompts.status().message()));
  if (const int max = absl::GetFlag(FLAGS_max_prompts);
      max > 0 && static_cast<size_t>(max) < prompts->size()) {
    prompts->resize(max);
  }

  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(absl::GetFlag(FLAGS_device));
  } catch (const std::exception&) {
    return Fail("--device: '" + absl::GetFlag(FLAGS_device) + "' is not a device");
  }
  auto tpdiff_model = model::LoadModelPackage(tpdiff_dir, device);
  if (!tpdiff_model.ok()) return Fail("--tpdiff_model: " + tpdiff_model.status().ToString());
  auto vanilla_model = model::LoadModelPackage(vanilla_dir, device);
  if (!vanilla_model.ok()) return Fail("--vanilla_model: " + vanilla_model.status().ToString());
  const spec::ModelManifest& tm = (*tpdiff_model)->manifest();
  const spec::ModelManifest& vm = (*vanilla_model)->manifest();
  // A mixed-up pair would still print a table; refuse it instead.
  if (tm.stages < 2) {
    return Fail(absl::StrCat("--tpdiff_model: package '", tm.name, "' has ", tm.stages,
                             " stage; a TPDiff-trained package has 2 or more"));
  }
  if (vm.stages != 1) {
    return Fail(absl::StrCat("--vanilla_model: package '", vm.name, "' has ", vm.stages,
                             " stages; a vanilla-trained package has 1"));
  }
  if (tm.frames != vm.frames || tm.height != vm.height || tm.width != vm.width) {
    return Fail(absl::StrFormat("the packages make different videos: %dx%dx%d and %dx%dx%d",
                                tm.frames, tm.height, tm.width, vm.frames, vm.height, vm.width));
  }
  if (tm.network_config_json != vm.network_config_json) {
    std::printf(
        "warning: the two packages' networks differ, so this is not a same-network "
        "comparison:\n  tpdiff:  %s\n  vanilla: %s\n",
        tm.network_config_json.c_str(), vm.network_config_json.c_str());
  }

  const std::optional<double> guidance = absl::GetFlag(FLAGS_guidance);
  const fs::path out = absl::GetFlag(FLAGS_out);
  std::vector<Row> rows;
  auto add_row = [&rows](std::string name, std::string label, model::LoadedModel* model,
                         std::string package_dir, std::string sampler) -> Row& {
    Row& r = rows.emplace_back();
    r.name = std::move(name);
    r.label = std::move(label);
    r.model = model;
    r.package_dir = std::move(package_dir);
    r.options.sampler = std::move(sampler);
    return r;
  };
  add_row("tpdiff", "TPDiff-trained, TPDiff sampler", tpdiff_model->get(), tpdiff_dir, "tpdiff");
  add_row("vanilla", "vanilla-trained, vanilla sampler", vanilla_model->get(), vanilla_dir,
          "vanilla");
  if (absl::GetFlag(FLAGS_sampler_row)) {
    add_row("tpdiff-pkg+vanilla-sampler", "TPDiff-trained, vanilla sampler", tpdiff_model->get(),
            tpdiff_dir, "vanilla")
        .options.stage_steps = vm.default_stage_steps;  // the vanilla package's total steps
  }
  for (Row& row : rows) {
    row.options.guidance_scale = guidance;  // empty: the package's default
    auto runner =
        train::EvalRunner::Create(*row.model, *prompts, row.options, (out / row.name).string());
    if (!runner.ok()) return Fail(row.name + ": " + runner.status().ToString());
    row.runner = *std::move(runner);
  }

  // Untimed warm-up (allocator, thread pool, first-touch of the weights), then the timed
  // videos: every prompt is sampled by every row before the next prompt starts, and the row
  // order rotates with the prompt, so a load change on a shared machine hits all rows alike
  // and no row always runs right after another.
  const int warmup = std::max(0, absl::GetFlag(FLAGS_warmup));
  if (warmup > 0) {
    std::vector<train::EvalPrompt> warm(
        prompts->begin(), prompts->begin() + std::min<size_t>(warmup, prompts->size()));
    for (Row& row : rows) {
      auto r = train::RunEval(*row.model, warm, row.options, (out / "warmup" / row.name).string());
      if (!r.ok()) return Fail(row.name + " warm-up: " + r.status().ToString());
    }
    std::error_code ec;
    fs::remove_all(out / "warmup", ec);
  }
  const int n = static_cast<int>(prompts->size());
  const int k = static_cast<int>(rows.size());
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < k; ++j) {
      Row& row = rows[(i + j) % k];
      auto result = row.runner->Next();
      if (!result.ok()) return Fail(row.name + ": " + result.status().ToString());
    }
    std::fprintf(stderr, "\rtpdiff-bench models: prompt %d/%d", i + 1, n);
    if (i + 1 == n) std::fputc('\n', stderr);
    std::fflush(stderr);
  }
  for (Row& row : rows) {
    auto report = row.runner->Finish();
    if (!report.ok()) return Fail(row.name + ": " + report.status().ToString());
    row.report = *std::move(report);
  }

  std::printf(
      "models benchmark: %d prompts from %s, %s, %d threads; timing interleaved (each prompt "
      "through every row in rotating order, %d untimed warm-up video%s per row)\n",
      n, absl::GetFlag(FLAGS_prompts).c_str(), device.str().c_str(), threads, warmup,
      warmup == 1 ? "" : "s");
  int model_width = 5;
  for (const Row& row : rows) {
    model_width = std::max(model_width, static_cast<int>(row.report.info.model.size()));
  }
  std::printf("%-28s %-*s %-9s %5s %5s %9s %9s %6s %6s %6s %6s %6s %6s %6s %7s %8s\n", "row",
              model_width, "model", "plan", "steps", "guid", "s/v mean", "s/v med", "adher", "bg",
              "count", "colour", "shape", "dir", "speed", "jerk", "frame-ch");
  for (const Row& row : rows) {
    const train::EvalTotals& t = row.report.totals;
    const std::vector<double> s = Seconds(row.report);
    std::printf(
        "%-28s %-*s %-9s %5d %5.1f %9.3f %9.3f %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f %7.3f "
        "%8.4f\n",
        row.name.c_str(), model_width, row.report.info.model.c_str(),
        PlanText(row.report.info.stage_steps).c_str(), row.report.info.total_steps,
        row.report.info.guidance_scale, Mean(s), Median(s), t.adherence, t.background, t.count,
        t.color, t.shape, t.direction, t.speed, t.jerk, t.frame_change);
  }
  const Row& tp = rows[0];
  const Row& va = rows[1];
  const double tp_median = Median(Seconds(tp.report)), va_median = Median(Seconds(va.report));
  const double speedup = tp_median > 0 ? va_median / tp_median : 0;
  const double diff_points = 100.0 * (tp.report.totals.adherence - va.report.totals.adherence);
  const bool speed_ok = speedup >= kSpeedupTarget;
  const bool adherence_ok = diff_points >= -kAdherenceDropTarget;
  std::printf("speed-up (vanilla s/video / tpdiff s/video, medians): %.2fx   target >= %.1fx: %s\n",
              speedup, kSpeedupTarget, speed_ok ? "met" : "NOT met");
  std::printf("adherence difference (tpdiff - vanilla): %+.1f points   target >= -%.0f: %s\n",
              diff_points, kAdherenceDropTarget, adherence_ok ? "met" : "NOT met");
  nlohmann::json sampler_only;
  if (rows.size() > 2) {
    const Row& sv = rows[2];
    const double sv_median = Median(Seconds(sv.report));
    const double sampler_speedup = tp_median > 0 ? sv_median / tp_median : 0;
    const double sampler_diff = 100.0 * (tp.report.totals.adherence - sv.report.totals.adherence);
    const double training_diff = 100.0 * (sv.report.totals.adherence - va.report.totals.adherence);
    std::printf(
        "same TPDiff package, TPDiff sampler vs vanilla sampler at %d steps: %.2fx, %+.1f points "
        "(the sampler's part); same vanilla sampler, TPDiff- vs vanilla-trained weights: "
        "%+.1f points (the training's part)\n",
        sv.report.info.total_steps, sampler_speedup, sampler_diff, training_diff);
    sampler_only = {{"speedup", sampler_speedup},
                    {"adherence_diff_points", sampler_diff},
                    {"training_adherence_diff_points", training_diff}};
  }
  for (const Row& row : rows) {
    std::printf("  %s: eval output in %s\n", row.name.c_str(), (out / row.name).c_str());
  }

  if (const std::string json_path = absl::GetFlag(FLAGS_json); !json_path.empty()) {
    nlohmann::json rows_json = nlohmann::json::array();
    for (const Row& row : rows) {
      rows_json.push_back(RowJson(row, (out / row.name).string()));
    }
    nlohmann::json j = {
        {"benchmark", "models"},
        {"prompts", absl::GetFlag(FLAGS_prompts)},
        {"videos_per_row", n},
        {"device", device.str()},
        {"threads", threads},
        {"timing", "interleaved: each prompt through every row, row order rotating per prompt"},
        {"warmup_videos_per_row", warmup},
        {"rows", rows_json},
        {"speedup", speedup},
        {"speedup_target", kSpeedupTarget},
        {"speedup_met", speed_ok},
        {"adherence_diff_points", diff_points},
        {"adherence_drop_target_points", kAdherenceDropTarget},
        {"adherence_met", adherence_ok}};
    if (!sampler_only.is_null()) j["tpdiff_package_sampler_only"] = sampler_only;
    std::ofstream f(json_path);
    f << j.dump(2) << "\n";
    if (!f.good()) return Fail("--json: cannot write " + json_path);
    std::printf("  JSON written to %s\n", json_path.c_str());
  }
  if (const std::string svg = absl::GetFlag(FLAGS_svg); !svg.empty()) {
    std::vector<Bar> bars;
    for (const Row& row : rows) {
      const double median = Median(Seconds(row.report));
      std::string note = absl::StrFormat("adherence %.3f", row.report.totals.adherence);
      if (&row != &tp && median > 0) {
        absl::StrAppendFormat(&note, "; TPDiff %.2fx faster", median / tp_median);
      }
      bars.push_back(
          {absl::StrCat(row.name, " (", PlanText(row.report.info.stage_steps), ")"), median, note});
    }
    std::ofstream f(svg);
    f << HorizontalBarChartSvg("Seconds per video, end to end (median)", "s", bars);
    if (!f.good()) return Fail("--svg: cannot write " + svg);
    std::printf("  chart written to %s\n", svg.c_str());
  }
  return 0;
}

}  // namespace tpdiff::bench
