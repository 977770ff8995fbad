#include "sampler_bench.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "conv_video_net.h"
#include "svg_chart.h"
#include "tpdiff/core/sampler.h"
#include "tpdiff/core/stage_plan.h"

ABSL_FLAG(int, frames, 16, "frames at full frame rate");
ABSL_FLAG(int, size, 32, "height and width");
ABSL_FLAG(int, net_width, 32, "channels of the fixed-cost conv network");
ABSL_FLAG(std::string, stage_steps, "10,10,10", "steps per stage, noisiest first");
// Optional so that `models` can tell "not given" (each package's default) from a value.
ABSL_FLAG(std::optional<double>, guidance, std::nullopt,
          "guidance scale (> 1 doubles the network batch, as served); sampler: default 3, "
          "models: default each package's");
ABSL_FLAG(int, repeats, 5, "timed runs of each sampler (interleaved), after one warm-up each");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 = all cores)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(std::string, svg, "", "write a bar chart of the result to this SVG file");

namespace tpdiff::bench {
namespace {

class FrameCounter : public core::SamplerObserver {
 public:
  void OnStep(const core::StepEvent& e) override { frame_steps += e.frames; }
  long frame_steps = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int RunSamplerBench() {
  const int threads = absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads)
                                                        : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  std::vector<int> steps;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_stage_steps), ',')) {
    steps.push_back(std::stoi(std::string(s)));
  }
  const core::NoiseSchedule schedule(core::Parameterization::kFlowMatching);
  core::StagePlanOptions options;
  options.num_frames = absl::GetFlag(FLAGS_frames);
  options.num_stages = static_cast<int>(steps.size());
  options.steps_per_stage = steps;
  auto pyramid = core::StagePlan::Create(schedule, options);
  if (!pyramid.ok()) {
    std::fprintf(stderr, "error: %s\n", pyramid.status().ToString().c_str());
    return 2;
  }
  auto vanilla = core::StagePlan::Vanilla(schedule, options.num_frames, pyramid->total_steps());
  if (!vanilla.ok()) {
    std::fprintf(stderr, "error: %s\n", vanilla.status().ToString().c_str());
    return 2;
  }

  const torch::Device device(absl::GetFlag(FLAGS_device));
  ConvVideoNet net(3, absl::GetFlag(FLAGS_net_width), 1, device);
  core::SampleRequest request;
  request.height = request.width = absl::GetFlag(FLAGS_size);
  request.tokens = torch::ones({1, 8}, torch::kLong);
  request.guidance_scale = absl::GetFlag(FLAGS_guidance).value_or(3.0);
  request.device = device;

  auto run = [&](const core::StagePlan& plan, FrameCounter* counter) {
    const auto begin = std::chrono::steady_clock::now();
    auto out = core::PyramidSampler::Sample(net, plan, request, counter);
    if (out.ok() && out->is_cuda()) out->cpu();  // waits for the device
    if (!out.ok()) {
      std::fprintf(stderr, "error: %s\n", out.status().ToString().c_str());
      std::exit(1);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  };
  FrameCounter tp_frames, va_frames;
  run(*pyramid, &tp_frames);
  run(*vanilla, &va_frames);
  std::vector<double> tp_times, va_times;
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  for (int i = 0; i < repeats; ++i) {
    tp_times.push_back(run(*pyramid, nullptr));
    va_times.push_back(run(*vanilla, nullptr));
  }
  const double tp = Median(tp_times), va = Median(va_times);
  const double predicted = static_cast<double>(va_frames.frame_steps) / tp_frames.frame_steps;
  std::printf("sampler benchmark: fixed-cost conv net (width %d), %d frames %dx%d, guidance %.1f, %d threads, %s\n",
              absl::GetFlag(FLAGS_net_width), options.num_frames, request.height, request.width,
              request.guidance_scale, threads, device.str().c_str());
  std::printf("  tpdiff  %-10s %2d steps  %8.3f s/video (median of %d)  frame-steps %ld\n",
              absl::GetFlag(FLAGS_stage_steps).c_str(), pyramid->total_steps(), tp, repeats,
              tp_frames.frame_steps);
  std::printf("  vanilla %-10d %2d steps  %8.3f s/video (median of %d)  frame-steps %ld\n",
              vanilla->total_steps(), vanilla->total_steps(), va, repeats, va_frames.frame_steps);
  std::printf("  speed-up measured %.3fx, predicted by frame counting %.3fx (%.0f%% of predicted)\n",
              va / tp, predicted, 100.0 * (va / tp) / predicted);
  if (!absl::GetFlag(FLAGS_svg).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_svg))
        << HorizontalBarChartSvg(
               "Sampling time per video (fixed-cost conv net)", "s",
               {{"vanilla, " + std::to_string(vanilla->total_steps()) + " steps", va, ""},
                {"TPDiff " + absl::GetFlag(FLAGS_stage_steps), tp,
                 absl::StrFormat("(%.2fx faster; predicted %.2fx)", va / tp, predicted)}});
    std::printf("  chart written to %s\n", absl::GetFlag(FLAGS_svg).c_str());
  }
  return 0;
}

}  // namespace tpdiff::bench
