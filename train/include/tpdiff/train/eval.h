#ifndef TPDIFF_TRAIN_EVAL_H_
#define TPDIFF_TRAIN_EVAL_H_

// tpdiff-eval's library: samples a list of caption prompts from a model package with the
// TPDiff or the vanilla sampler, writes every video as PNG frames plus a grid image, scores
// each video with the caption detector (core/eval_detector.h) and writes results.json.
//
// Output folder layout:
//   <out>/0000/00.png ... <out>/0000/15.png   frames of video 0 (RGB, the model's size)
//   <out>/grid.png                            rows = videos, columns = frames, upscaled
//   <out>/results.json                        per-video results and totals (ResultsToJson)
//
// An EvalRunner samples through its own denoiser of the model and is not thread-safe; the free
// functions are stateless.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/train/eval_detector.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/core/sampler.h"
#include "tpdiff/core/stage_plan.h"
#include "tpdiff/train/synthetic_data.h"

namespace tpdiff::train {

struct EvalPrompt {
  std::string prompt;
  uint64_t seed = 0;
  train::SceneDescription scene;  // the parsed prompt
};

// One prompt per line, optionally "prompt<TAB>seed". Blank lines and lines starting with '#'
// are skipped. A line without a seed gets base_seed + its 0-based prompt index. Every prompt
// is parsed (train::ParseCaption); errors name the line: "prompts line 3: caption: word 2 ...".
absl::StatusOr<std::vector<EvalPrompt>> ParsePromptList(absl::string_view text,
                                                        uint64_t base_seed);

// PNG writing (libpng, 8-bit RGB). `rgb` is [3, H, W] uint8 on the CPU.
absl::Status WritePng(const std::string& path, const torch::Tensor& rgb);
// Float video in [-1, 1] (clamped) or uint8 -> [3, T, H, W] uint8 on the CPU.
torch::Tensor VideoToUint8(const torch::Tensor& video);
// Writes <dir>/00.png, <dir>/01.png, ... for a [3, T, H, W] uint8 video, creating <dir>.
absl::Status WriteVideoFrames(const std::string& dir, const torch::Tensor& video_u8);
// Rows = videos, columns = frames, each frame upscaled `scale` times (nearest), separated by
// a 2 px dark line. Videos must share one size; INVALID_ARGUMENT otherwise or when empty.
absl::StatusOr<torch::Tensor> MakeGrid(const std::vector<torch::Tensor>& videos_u8, int scale);

struct EvalVideoResult {
  std::string prompt;
  uint64_t seed = 0;
  double seconds = 0;  // sampling wall time (0 when the video was not sampled here)
  int num_objects = 0;
  train::VideoScore score;
};

struct EvalTotals {
  int videos = 0;
  double adherence = 0;  // fractions of videos with the attribute right
  double background = 0;
  double count = 0;
  double color = 0;
  double shape = 0;
  double direction = 0;
  double speed = 0;
  int single_object_videos = 0;
  double single_object_adherence = 0;
  int two_object_videos = 0;
  double two_object_adherence = 0;
  double jerk = 0;          // mean over videos with a tracked object, px/frame^2
  int tracked_videos = 0;   // videos in which at least one object was found
  double frame_change = 0;  // mean over videos, [0, 1] units
  double seconds_per_video = 0;
};

EvalTotals Summarize(const std::vector<EvalVideoResult>& results);

// The per-attribute fractions as results.json writes them: {"background": ..., "count": ...,
// "color": ..., "shape": ..., "direction": ..., "speed": ...}.
nlohmann::json AttributesJson(const EvalTotals& totals);

// What produced the videos, recorded in results.json.
struct EvalRunInfo {
  std::string model;
  std::string sampler;           // "tpdiff" | "vanilla"
  std::vector<int> stage_steps;  // the plan's steps, noisiest stage first
  int total_steps = 0;
  double guidance_scale = 1.0;
  core::FlowSolver solver = core::SampleRequest().solver;
  std::string device;
};

// {"run": {...}, "videos": [...], "totals": {...}}.
std::string ResultsToJson(const EvalRunInfo& info, const std::vector<EvalVideoResult>& results);

// Scores a finished video and writes its frames to <out_dir>/<index as 0000>/.
absl::StatusOr<EvalVideoResult> ScoreAndWriteVideo(const torch::Tensor& video,
                                                   const EvalPrompt& prompt, int index,
                                                   double seconds, const std::string& out_dir);
// Writes grid.png and results.json into out_dir.
absl::Status WriteSummaryFiles(const std::string& out_dir, const EvalRunInfo& info,
                               const std::vector<torch::Tensor>& videos_u8,
                               const std::vector<EvalVideoResult>& results, int grid_scale);

struct EvalOptions {
  std::string sampler = "tpdiff";  // "tpdiff" | "vanilla" (K = 1, full frame rate)
  // tpdiff: one entry per stage of the package, noisiest first. vanilla: the total number of
  // full-rate steps, or several entries (e.g. a pyramid plan's) whose sum is that total.
  // Empty = the manifest's default_stage_steps (their sum for vanilla).
  std::vector<int> stage_steps;
  std::optional<double> guidance_scale; // empty = the manifest's default
  core::FlowSolver solver = core::SampleRequest().solver;
  int grid_scale = 4;
};

// Called after every video: (videos done, total, that video's result).
using EvalProgress = std::function<void(int, int, const EvalVideoResult&)>;

struct EvalReport {
  EvalRunInfo info;
  std::vector<EvalVideoResult> videos;
  EvalTotals totals;
};

// Scores videos sampled elsewhere (e.g. by a PyTorch model before it is packaged), one per
// prompt in order, each [3, T, H, W] in [-1, 1] or uint8, and writes the same files as
// RunEval. INVALID_ARGUMENT when the counts differ or a video is malformed.
absl::StatusOr<EvalReport> ScoreVideos(const std::vector<torch::Tensor>& videos,
                                       const std::vector<EvalPrompt>& prompts,
                                       const EvalRunInfo& info, const std::string& out_dir,
                                       int grid_scale);

// Samples every prompt (batch 1, the prompt's seed) and writes everything into out_dir
// (created). INVALID_ARGUMENT for a bad sampler name, stage_steps of the wrong count or
// range, or a prompt the model's tokenizer rejects (checked before sampling starts).
absl::StatusOr<EvalReport> RunEval(const model::LoadedModel& model,
                                   const std::vector<EvalPrompt>& prompts,
                                   const EvalOptions& options, const std::string& out_dir,
                                   const EvalProgress& progress = nullptr);

// RunEval one video at a time, for callers that interleave several models on one machine
// (tpdiff-bench models alternates prompts between packages, so that a change in the machine's
// load hits every model alike). RunEval is Create, Next until done(), Finish.
//
// Borrows `model`, which must outlive the runner; not thread-safe.
class EvalRunner {
 public:
  // Validates the options and tokenizes every prompt (RunEval's errors), then creates out_dir.
  static absl::StatusOr<std::unique_ptr<EvalRunner>> Create(const model::LoadedModel& model,
                                                            std::vector<EvalPrompt> prompts,
                                                            const EvalOptions& options,
                                                            std::string out_dir);
  EvalRunner(const EvalRunner&) = delete;
  EvalRunner& operator=(const EvalRunner&) = delete;

  // What will be / was sampled: the resolved plan, guidance and device.
  const EvalRunInfo& info() const { return report_.info; }
  int done() const { return static_cast<int>(report_.videos.size()); }
  int total() const { return static_cast<int>(prompts_.size()); }

  // Samples, scores and writes the next prompt's video; FAILED_PRECONDITION when all are done.
  absl::StatusOr<EvalVideoResult> Next();
  // Writes grid.png and results.json for the videos sampled so far (at least one) and
  // returns the report with its totals.
  absl::StatusOr<EvalReport> Finish();

 private:
  EvalRunner(const model::LoadedModel& model, std::vector<EvalPrompt> prompts, core::StagePlan plan,
             std::vector<torch::Tensor> tokens, std::string out_dir, int grid_scale);

  const model::LoadedModel& model_;
  std::unique_ptr<core::Denoiser> denoiser_;  // over model_'s weights
  std::vector<EvalPrompt> prompts_;
  core::StagePlan plan_;
  std::vector<torch::Tensor> tokens_;
  std::string out_dir_;
  int grid_scale_;
  EvalReport report_;
  std::vector<torch::Tensor> videos_u8_;
};

}  // namespace tpdiff::train

#endif  // TPDIFF_TRAIN_EVAL_H_
