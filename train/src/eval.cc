#include "tpdiff/train/eval.h"

#include <png.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tpdiff/core/sampler.h"
#include "tpdiff/core/stage_plan.h"

namespace tpdiff::train {
namespace {

namespace fs = std::filesystem;

absl::Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

// Writes to <path>.tmp and renames, so a crash never leaves a half-written file behind.
absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

nlohmann::json ObjectJson(const train::ObjectScore& o) {
  nlohmann::json j = {{"found", o.found}};
  if (!o.found) return j;
  j["color_ok"] = o.color_ok;
  j["shape_ok"] = o.shape_ok;
  j["direction_ok"] = o.direction_ok;
  j["speed_ok"] = o.speed_ok;
  j["detected_color"] = std::string(train::ColorName(o.color));
  j["detected_shape"] = std::string(train::ShapeName(o.shape));
  j["fill_ratio"] = o.fill_ratio;
  j["velocity"] = {o.vx, o.vy};
  j["speed"] = o.speed;
  j["present_fraction"] = o.present_fraction;
  j["jerk"] = o.jerk;
  return j;
}

}  // namespace

absl::StatusOr<std::vector<EvalPrompt>> ParsePromptList(absl::string_view text,
                                                        uint64_t base_seed) {
  std::vector<EvalPrompt> prompts;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    EvalPrompt p;
    p.seed = base_seed + prompts.size();
    const size_t tab = line.find('\t');
    absl::string_view caption = line;
    if (tab != absl::string_view::npos) {
      caption = absl::StripAsciiWhitespace(line.substr(0, tab));
      const absl::string_view seed_text = absl::StripAsciiWhitespace(line.substr(tab + 1));
      if (!absl::SimpleAtoi(seed_text, &p.seed)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "prompts line ", line_number, ": seed '", seed_text,
            "' is not an unsigned 64-bit integer"));
      }
    }
    absl::StatusOr<train::SceneDescription> scene = train::ParseCaption(caption);
    if (!scene.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompts line ", line_number, ": ", scene.status().message()));
    }
    p.prompt = std::string(caption);
    p.scene = *std::move(scene);
    prompts.push_back(std::move(p));
  }
  if (prompts.empty()) return absl::InvalidArgumentError("prompts: no prompts in the list");
  return prompts;
}

absl::Status WritePng(const std::string& path, const torch::Tensor& rgb) {
  if (rgb.dim() != 3 || rgb.size(0) != 3 || rgb.scalar_type() != torch::kUInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "png: expected a [3, H, W] uint8 image, got ", c10::str(rgb.sizes()), " ",
        c10::toString(rgb.scalar_type())));
  }
  // libpng wants interleaved rows.
  const torch::Tensor hwc = rgb.to(torch::kCPU).permute({1, 2, 0}).contiguous();
  const int height = static_cast<int>(hwc.size(0)), width = static_cast<int>(hwc.size(1));
  const std::string tmp = path + ".tmp";
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) return absl::PermissionDeniedError(absl::StrCat("cannot open ", tmp));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
  if (png == nullptr || info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::fclose(file);
    return absl::ResourceExhaustedError("png: cannot allocate the writer");
  }
  // libpng reports errors by longjmp; nothing with a destructor lives in this frame
  // between here and png_destroy_write_struct.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("png: libpng failed writing ", path));
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const uint8_t* data = hwc.data_ptr<uint8_t>();
  for (int y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(data + static_cast<size_t>(y) * width * 3));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(file) != 0) return absl::InternalError(absl::StrCat("cannot close ", tmp));
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

torch::Tensor VideoToUint8(const torch::Tensor& video) {
  torch::Tensor v = video.to(torch::kCPU);
  if (v.dim() == 5) v = v[0];
  if (v.scalar_type() == torch::kUInt8) return v.contiguous();
  return ((v.to(torch::kFloat32).clamp(-1, 1) + 1) * 127.5).round().to(torch::kUInt8).contiguous();
}

absl::Status WriteVideoFrames(const std::string& dir, const torch::Tensor& video_u8) {
  if (video_u8.dim() != 4 || video_u8.size(0) != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("video: shape ", c10::str(video_u8.sizes()), " is not [3, T, H, W]"));
  }
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  for (int64_t t = 0; t < video_u8.size(1); ++t) {
    const std::string path = absl::StrFormat("%s/%02d.png", dir, t);
    if (absl::Status s = WritePng(path, video_u8.select(1, t)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> MakeGrid(const std::vector<torch::Tensor>& videos_u8, int scale) {
  constexpr int kGap = 2;
  constexpr uint8_t kGapValue = 40;
  if (videos_u8.empty()) return absl::InvalidArgumentError("grid: no videos");
  if (scale < 1 || scale > 16) {
    return absl::InvalidArgumentError(absl::StrCat("grid scale: ", scale, " is outside [1, 16]"));
  }
  const auto sizes = videos_u8[0].sizes();
  for (const torch::Tensor& v : videos_u8) {
    if (v.dim() != 4 || v.sizes() != sizes || v.scalar_type() != torch::kUInt8) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grid: videos must all be [3, T, H, W] uint8 of one size; got ", c10::str(v.sizes()),
          " and ", c10::str(sizes)));
    }
  }
  const int64_t T = sizes[1], H = sizes[2] * scale, W = sizes[3] * scale;
  const int64_t rows = static_cast<int64_t>(videos_u8.size());
  torch::Tensor grid = torch::full({3, rows * (H + kGap) + kGap, T * (W + kGap) + kGap},
                                   kGapValue, torch::kUInt8);
  for (int64_t r = 0; r < rows; ++r) {
    const torch::Tensor up = videos_u8[r]
                                 .repeat_interleave(scale, 2)
                                 .repeat_interleave(scale, 3);  // [3, T, H, W]
    for (int64_t t = 0; t < T; ++t) {
      grid.narrow(1, kGap + r * (H + kGap), H).narrow(2, kGap + t * (W + kGap), W).copy_(
          up.select(1, t));
    }
  }
  return grid;
}

EvalTotals Summarize(const std::vector<EvalVideoResult>& results) {
  EvalTotals t;
  t.videos = static_cast<int>(results.size());
  if (results.empty()) return t;
  for (const EvalVideoResult& r : results) {
    const train::VideoScore& s = r.score;
    t.adherence += s.adherent;
    t.background += s.background_ok;
    t.count += s.count_ok;
    t.color += s.color_ok;
    t.shape += s.shape_ok;
    t.direction += s.direction_ok;
    t.speed += s.speed_ok;
    const bool tracked = std::any_of(s.objects.begin(), s.objects.end(),
                                     [](const train::ObjectScore& o) { return o.found; });
    if (tracked) {
      t.jerk += s.jerk;
      ++t.tracked_videos;
    }
    t.frame_change += s.frame_change;
    t.seconds_per_video += r.seconds;
    if (r.num_objects == 2) {
      ++t.two_object_videos;
      t.two_object_adherence += s.adherent;
    } else {
      ++t.single_object_videos;
      t.single_object_adherence += s.adherent;
    }
  }
  const double n = t.videos;
  for (double* v : {&t.adherence, &t.background, &t.count, &t.color, &t.shape, &t.direction,
                    &t.speed, &t.frame_change, &t.seconds_per_video}) {
    *v /= n;
  }
  if (t.tracked_videos > 0) t.jerk /= t.tracked_videos;
  if (t.single_object_videos > 0) t.single_object_adherence /= t.single_object_videos;
  if (t.two_object_videos > 0) t.two_object_adherence /= t.two_object_videos;
  return t;
}

nlohmann::json AttributesJson(const EvalTotals& t) {
  return {{"background", t.background}, {"count", t.count},         {"color", t.color},
          {"shape", t.shape},           {"direction", t.direction}, {"speed", t.speed}};
}

std::string ResultsToJson(const EvalRunInfo& info, const std::vector<EvalVideoResult>& results) {
  nlohmann::json videos = nlohmann::json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const EvalVideoResult& r = results[i];
    const train::VideoScore& s = r.score;
    nlohmann::json objects = nlohmann::json::array();
    for (const train::ObjectScore& o : s.objects) objects.push_back(ObjectJson(o));
    videos.push_back({{"index", i},
                      {"frames", absl::StrFormat("%04d", i)},
                      {"prompt", r.prompt},
                      {"seed", r.seed},
                      {"seconds", r.seconds},
                      {"adherent", s.adherent},
                      {"background", s.background_ok},
                      {"count", s.count_ok},
                      {"color", s.color_ok},
                      {"shape", s.shape_ok},
                      {"direction", s.direction_ok},
                      {"speed", s.speed_ok},
                      {"detected_objects", s.detected_objects},
                      {"jerk", s.jerk},
                      {"frame_change", s.frame_change},
                      {"objects", objects}});
  }
  const EvalTotals t = Summarize(results);
  nlohmann::json totals = {
      {"videos", t.videos},
      {"adherence", t.adherence},
      {"attributes", AttributesJson(t)},
      {"single_object", {{"videos", t.single_object_videos}, {"adherence", t.single_object_adherence}}},
      {"two_object", {{"videos", t.two_object_videos}, {"adherence", t.two_object_adherence}}},
      {"smoothness",
       {{"jerk", t.jerk}, {"tracked_videos", t.tracked_videos}, {"frame_change", t.frame_change}}},
      {"seconds_per_video", t.seconds_per_video}};
  nlohmann::json run = {{"model", info.model},
                        {"sampler", info.sampler},
                        {"stage_steps", info.stage_steps},
                        {"total_steps", info.total_steps},
                        {"guidance", info.guidance_scale},
                        {"solver", core::FlowSolverName(info.solver)},
                        {"device", info.device}};
  return nlohmann::json({{"run", run}, {"videos", videos}, {"totals", totals}}).dump(2) + "\n";
}

absl::StatusOr<EvalVideoResult> ScoreAndWriteVideo(const torch::Tensor& video,
                                                   const EvalPrompt& prompt, int index,
                                                   double seconds, const std::string& out_dir) {
  const torch::Tensor u8 = VideoToUint8(video);
  absl::StatusOr<train::VideoScore> score = train::ScoreVideo(u8, prompt.scene);
  if (!score.ok()) return score.status();
  if (absl::Status s = WriteVideoFrames(absl::StrFormat("%s/%04d", out_dir, index), u8);
      !s.ok()) {
    return s;
  }
  EvalVideoResult r;
  r.prompt = prompt.prompt;
  r.seed = prompt.seed;
  r.seconds = seconds;
  r.num_objects = static_cast<int>(prompt.scene.objects.size());
  r.score = *std::move(score);
  return r;
}

absl::Status WriteSummaryFiles(const std::string& out_dir, const EvalRunInfo& info,
                               const std::vector<torch::Tensor>& videos_u8,
                               const std::vector<EvalVideoResult>& results, int grid_scale) {
  if (absl::Status s = MakeDirs(out_dir); !s.ok()) return s;
  absl::StatusOr<torch::Tensor> grid = MakeGrid(videos_u8, grid_scale);
  if (!grid.ok()) return grid.status();
  if (absl::Status s = WritePng(out_dir + "/grid.png", *grid); !s.ok()) return s;
  return WriteTextFile(out_dir + "/results.json", ResultsToJson(info, results));
}

namespace {

// The plan a run samples with. TPDiff: the package's stages with one entry per stage. Vanilla:
// one full-rate stage whose steps are the entries' sum, so "--stage-steps 30" and
// "--stage-steps 10,10,10" (the same total as a pyramid plan) both mean 30 steps.
absl::StatusOr<core::StagePlan> ResolvePlan(const spec::ModelManifest& m,
                                            const EvalOptions& options) {
  if (options.sampler != "tpdiff" && options.sampler != "vanilla") {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler: '", options.sampler, "' is neither 'tpdiff' nor 'vanilla'"));
  }
  const std::vector<int>& steps =
      options.stage_steps.empty() ? m.default_stage_steps : options.stage_steps;
  const core::NoiseSchedule schedule(m.parameterization);
  if (options.sampler == "vanilla") {
    int total = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i] < 1 || steps[i] > core::StagePlan::kMaxStepsPerStage) {
        return absl::InvalidArgumentError(absl::StrCat("stage-steps: entry ", i + 1, " (",
                                                       steps[i], ") is outside 1..",
                                                       core::StagePlan::kMaxStepsPerStage));
      }
      total += steps[i];
    }
    absl::StatusOr<core::StagePlan> plan = core::StagePlan::Vanilla(schedule, m.frames, total);
    if (!plan.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stage-steps: ", total, " vanilla steps in total: ", plan.status().message()));
    }
    return plan;
  }
  core::StagePlanOptions plan_options;
  plan_options.num_frames = m.frames;
  plan_options.num_stages = m.stages;
  plan_options.steps_per_stage = steps;
  plan_options.boundaries = m.boundaries;
  absl::StatusOr<core::StagePlan> plan = core::StagePlan::Create(schedule, plan_options);
  if (!plan.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("stage-steps: ", plan.status().message()));
  }
  return plan;
}

}  // namespace

EvalRunner::EvalRunner(const model::LoadedModel& model, std::vector<EvalPrompt> prompts,
                       core::StagePlan plan, std::vector<torch::Tensor> tokens,
                       std::string out_dir, int grid_scale)
    : model_(model),
      denoiser_(model.NewDenoiser()),
      prompts_(std::move(prompts)),
      plan_(std::move(plan)),
      tokens_(std::move(tokens)),
      out_dir_(std::move(out_dir)),
      grid_scale_(grid_scale) {}

absl::StatusOr<std::unique_ptr<EvalRunner>> EvalRunner::Create(const model::LoadedModel& model,
                                                               std::vector<EvalPrompt> prompts,
                                                               const EvalOptions& options,
                                                               std::string out_dir) {
  const spec::ModelManifest& m = model.manifest();
  absl::StatusOr<core::StagePlan> plan = ResolvePlan(m, options);
  if (!plan.ok()) return plan.status();

  // Tokenize everything first: a bad prompt must fail before minutes of sampling.
  std::vector<torch::Tensor> tokens;
  for (size_t i = 0; i < prompts.size(); ++i) {
    absl::StatusOr<std::vector<int64_t>> ids = model.tokenizer().Encode(prompts[i].prompt);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt ", i, " '", prompts[i].prompt, "': ", ids.status().message()));
    }
    tokens.push_back(torch::tensor(*ids, torch::kLong).unsqueeze(0));
  }
  if (absl::Status s = MakeDirs(out_dir); !s.ok()) return s;

  std::unique_ptr<EvalRunner> runner(new EvalRunner(model, std::move(prompts), *std::move(plan),
                                                    std::move(tokens), std::move(out_dir),
                                                    options.grid_scale));
  EvalRunInfo& info = runner->report_.info;
  info.model = m.name;
  info.sampler = options.sampler;
  for (const core::Stage& stage : runner->plan_.stages()) info.stage_steps.push_back(stage.steps);
  info.total_steps = runner->plan_.total_steps();
  info.guidance_scale = options.guidance_scale.value_or(m.default_guidance_scale);
  info.solver = options.solver;
  info.device = model.device().str();
  return runner;
}

absl::StatusOr<EvalVideoResult> EvalRunner::Next() {
  const size_t i = report_.videos.size();
  if (i >= prompts_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("eval: all ", prompts_.size(), " prompts are done"));
  }
  const spec::ModelManifest& m = model_.manifest();
  core::SampleRequest request;
  request.batch = 1;
  request.channels = m.channels;
  request.height = m.height;
  request.width = m.width;
  request.tokens = tokens_[i];
  request.guidance_scale = report_.info.guidance_scale;
  request.solver = report_.info.solver;
  request.seed = prompts_[i].seed;
  request.device = model_.device();
  const auto begin = std::chrono::steady_clock::now();
  absl::StatusOr<torch::Tensor> video =
      core::PyramidSampler::Sample(*denoiser_, plan_, request);
  if (!video.ok()) {
    return absl::Status(video.status().code(),
                        absl::StrCat("prompt ", i, ": ", video.status().message()));
  }
  const torch::Tensor cpu = video->to(torch::kCPU);  // waits for an accelerator
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  absl::StatusOr<EvalVideoResult> result =
      ScoreAndWriteVideo(cpu, prompts_[i], static_cast<int>(i), seconds, out_dir_);
  if (!result.ok()) return result.status();
  videos_u8_.push_back(VideoToUint8(cpu));
  report_.videos.push_back(*result);
  return result;
}

absl::StatusOr<EvalReport> EvalRunner::Finish() {
  if (absl::Status s =
          WriteSummaryFiles(out_dir_, report_.info, videos_u8_, report_.videos, grid_scale_);
      !s.ok()) {
    return s;
  }
  report_.totals = Summarize(report_.videos);
  return report_;
}

absl::StatusOr<EvalReport> ScoreVideos(const std::vector<torch::Tensor>& videos,
                                       const std::vector<EvalPrompt>& prompts,
                                       const EvalRunInfo& info, const std::string& out_dir,
                                       int grid_scale) {
  if (videos.size() != prompts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("videos: ", videos.size(), " videos for ",
                                                   prompts.size(), " prompts"));
  }
  if (absl::Status s = MakeDirs(out_dir); !s.ok()) return s;
  EvalReport report;
  report.info = info;
  std::vector<torch::Tensor> videos_u8;
  for (size_t i = 0; i < videos.size(); ++i) {
    absl::StatusOr<EvalVideoResult> result =
        ScoreAndWriteVideo(videos[i], prompts[i], static_cast<int>(i), 0.0, out_dir);
    if (!result.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("videos: video ", i, ": ", result.status().message()));
    }
    report.videos.push_back(*std::move(result));
    videos_u8.push_back(VideoToUint8(videos[i]));
  }
  if (absl::Status s = WriteSummaryFiles(out_dir, info, videos_u8, report.videos, grid_scale);
      !s.ok()) {
    return s;
  }
  report.totals = Summarize(report.videos);
  return report;
}

absl::StatusOr<EvalReport> RunEval(const model::LoadedModel& model,
                                   const std::vector<EvalPrompt>& prompts,
                                   const EvalOptions& options, const std::string& out_dir,
                                   const EvalProgress& progress) {
  absl::StatusOr<std::unique_ptr<EvalRunner>> runner =
      EvalRunner::Create(model, prompts, options, out_dir);
  if (!runner.ok()) return runner.status();
  while ((*runner)->done() < (*runner)->total()) {
    absl::StatusOr<EvalVideoResult> result = (*runner)->Next();
    if (!result.ok()) return result.status();
    if (progress) progress((*runner)->done(), (*runner)->total(), *result);
  }
  return (*runner)->Finish();
}

}  // namespace tpdiff::train
