#include "latent_bench.h"

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tpdiff/core/device.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/model/latent_job.h"
#include "tpdiff/model/model_package.h"

ABSL_FLAG(std::string, package, "", "latent: the latent package folder");
ABSL_FLAG(std::string, latent_steps, "",
          "latent: steps per stage, noisiest first; empty = the package's default");
ABSL_DECLARE_FLAG(std::optional<double>, guidance);
ABSL_DECLARE_FLAG(int, repeats);
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(std::string, device);

namespace tpdiff::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

// CPU time of the calling thread: with one intra-op thread every op runs on it, so this is
// the job's work even while other processes share the cores (wall time is not).
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct JobCost {
  double encode = 0;
  double sample = 0;
  double decode = 0;       // every stage's preview and the video
  double sample_cpu = 0;   // encode and sample, CPU time of this thread
};

absl::StatusOr<JobCost> RunJob(const model::LoadedModel& m, core::Denoiser& denoiser,
                               const model::LatentJobRequest& job) {
  const double cpu_begin = ThreadCpuSeconds();
  absl::StatusOr<model::LatentJobResult> result = model::SampleLatentJob(
      m.manifest(), m.tokenizer(), *m.latent_modules(), denoiser, job);
  if (!result.ok()) return result.status();
  JobCost cost{result->encode_seconds, result->sample_seconds, 0,
               ThreadCpuSeconds() - cpu_begin};
  const auto begin = SteadyClock::now();
  // The worker decodes each stage's clean estimate (the shape of its end latents) as a
  // preview; the last stage's preview is the video.
  for (const torch::Tensor& z : result->stage_latents) {
    absl::StatusOr<torch::Tensor> frames = m.latent_modules()->Decode(z);
    if (!frames.ok()) return frames.status();
  }
  cost.decode = std::chrono::duration<double>(SteadyClock::now() - begin).count();
  return cost;
}

}  // namespace

int RunLatentBench() {
  const int threads = model::ConfigureCpuThreads(absl::GetFlag(FLAGS_threads));
  absl::StatusOr<torch::Device> device = core::ResolveDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    std::fprintf(stderr, "tpdiff-bench latent: %s\n", device.status().ToString().c_str());
    return 2;
  }
  absl::StatusOr<std::unique_ptr<model::LoadedModel>> loaded =
      model::LoadModelPackage(absl::GetFlag(FLAGS_package), *device);
  if (!loaded.ok() || (*loaded)->latent_modules() == nullptr) {
    std::fprintf(stderr, "tpdiff-bench latent: --package: %s\n",
                 loaded.ok() ? "not a latent package" : loaded.status().ToString().c_str());
    return 2;
  }
  const model::LoadedModel& m = **loaded;
  const spec::ModelManifest& manifest = m.manifest();
  model::LatentJobRequest job;
  job.prompt = "a red ball rolling to the right";
  job.seed = 1;
  job.guidance_scale = absl::GetFlag(FLAGS_guidance).value_or(manifest.default_guidance_scale);
  job.stage_steps = manifest.default_stage_steps;
  if (!absl::GetFlag(FLAGS_latent_steps).empty()) {
    job.stage_steps.clear();
    for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_latent_steps), ',')) {
      int steps = 0;
      if (!absl::SimpleAtoi(s, &steps)) {
        std::fprintf(stderr, "tpdiff-bench latent: --latent_steps: \"%s\" is not a number\n",
                     std::string(s).c_str());
        return 2;
      }
      job.stage_steps.push_back(steps);
    }
  }
  job.num_frames = manifest.frames;
  job.height = manifest.height;
  job.width = manifest.width;
  model::LatentJobRequest vanilla = job;
  vanilla.vanilla = true;
  const int total = std::accumulate(job.stage_steps.begin(), job.stage_steps.end(), 0);

  // One warm-up each, then the two samplers interleaved so drift in the machine's load
  // reaches both alike.
  std::unique_ptr<core::Denoiser> denoiser = m.NewDenoiser();
  std::vector<JobCost> tpdiff, plain;
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  for (int i = 0; i <= repeats; ++i) {
    for (auto* pair : {&job, &vanilla}) {
      absl::StatusOr<JobCost> cost = RunJob(m, *denoiser, *pair);
      if (!cost.ok()) {
        std::fprintf(stderr, "tpdiff-bench latent: %s\n", cost.status().ToString().c_str());
        return 1;
      }
      if (i > 0) (pair == &job ? tpdiff : plain).push_back(*cost);
    }
  }
  auto median = [](const std::vector<JobCost>& v, double JobCost::*field) {
    std::vector<double> x;
    for (const JobCost& c : v) x.push_back(c.*field);
    return Median(x);
  };
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  std::printf("package %s: %d frames %dx%d, steps %s (vanilla %d), guidance %.1f, "
              "%d thread(s), %s, median of %d\n",
              manifest.name.c_str(), manifest.frames, manifest.width, manifest.height,
              absl::StrJoin(job.stage_steps, ",").c_str(), total, job.guidance_scale, threads,
              device->str().c_str(), repeats);
  std::printf("%-8s %10s %10s %10s %14s\n", "sampler", "sample_s", "encode_s", "decode_s",
              "enc+sample_cpu");
  for (const auto& [name, costs] : {std::pair{"tpdiff", &tpdiff}, std::pair{"vanilla", &plain}}) {
    std::printf("%-8s %10.4f %10.4f %10.4f %14.4f\n", name, median(*costs, &JobCost::sample),
                median(*costs, &JobCost::encode), median(*costs, &JobCost::decode),
                median(*costs, &JobCost::sample_cpu));
  }
  std::printf("sampling: TPDiff %.2fx faster than vanilla at %d steps (wall; %.2fx in CPU time "
              "of encoding and sampling)\n",
              median(plain, &JobCost::sample) / median(tpdiff, &JobCost::sample), total,
              median(plain, &JobCost::sample_cpu) / median(tpdiff, &JobCost::sample_cpu));
  std::printf("peak RSS %.1f MB\n", usage.ru_maxrss / 1024.0);
  return 0;
}

}  // namespace tpdiff::bench
