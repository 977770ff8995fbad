// tpdiff-eval: samples a prompt list from a model package and scores caption adherence.
//   tpdiff-eval --model DIR --prompts FILE --out DIR [--sampler tpdiff|vanilla]
//               [--stage-steps 10,10,10] [--guidance W] [--solver ab2|euler|heun]
//               [--seed S] [--threads N] [--device cpu|cuda] [--grid-scale N]
// Flag parsing and the progress bar only; the work is in tpdiff/train/eval.h.

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <ATen/Parallel.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/train/eval.h"

namespace {

constexpr char kUsage[] =
    "usage: tpdiff-eval --model DIR --prompts FILE --out DIR [--sampler tpdiff|vanilla]\n"
    "                   [--stage-steps 10,10,10] [--guidance W] [--solver ab2|euler|heun]\n"
    "                   [--seed S] [--threads N] [--device cpu|cuda] [--grid-scale N]\n"
    "  --solver: flow-matching solver (default ab2: one network call per step, second\n"
    "  order; heun calls twice per step).\n"
    "  --stage-steps: one entry per stage of the package with --sampler tpdiff; with\n"
    "  --sampler vanilla the total number of full-rate steps (30), or entries summed.\n"
    "  prompts: one caption per line, optionally caption<TAB>seed; lines without a seed\n"
    "  use --seed + their index. Writes OUT/<0000>/<00>.png, OUT/grid.png, OUT/results.json.\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "tpdiff-eval: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Spinning OpenMP waits made sampling 2x slower here even on an idle 2-core machine.
  tpdiff::model::ReexecWithPassiveOpenMpWait(argv);
  using tpdiff::train::EvalVideoResult;
  // --name value and --name=value; '-' and '_' are the same inside names.
  std::map<std::string, std::string> flags = {
      {"sampler", "tpdiff"}, {"seed", "1000000000"}, {"threads", "0"},
      {"device", "cpu"},     {"grid_scale", "4"}};
  const std::map<std::string, bool> known = {
      {"model", true}, {"prompts", true}, {"out", true}, {"sampler", true},
      {"stage_steps", true}, {"guidance", true}, {"seed", true}, {"threads", true},
      {"device", true}, {"grid_scale", true}, {"solver", true}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg.rfind("--", 0) != 0) return Fail("unexpected argument '" + arg + "'\n" + kUsage);
    arg = arg.substr(2);
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Fail("--" + arg + " needs a value");
    }
    arg = absl::StrReplaceAll(arg, {{"-", "_"}});
    if (known.count(arg) == 0) return Fail("unknown flag --" + arg + "\n" + kUsage);
    flags[arg] = value;
  }
  for (const char* required : {"model", "prompts", "out"}) {
    if (flags.count(required) == 0) {
      return Fail(std::string("--") + required + " is required\n" + kUsage);
    }
  }

  tpdiff::train::EvalOptions options;
  options.sampler = flags["sampler"];
  uint64_t seed = 0;
  int threads = 0;
  if (!absl::SimpleAtoi(flags["seed"], &seed)) return Fail("--seed: not an unsigned integer");
  if (!absl::SimpleAtoi(flags["threads"], &threads) || threads < 0) {
    return Fail("--threads: not a non-negative integer");
  }
  if (!absl::SimpleAtoi(flags["grid_scale"], &options.grid_scale)) {
    return Fail("--grid-scale: not an integer");
  }
  if (flags.count("stage_steps") != 0) {
    for (absl::string_view part : absl::StrSplit(flags["stage_steps"], ',')) {
      int steps = 0;
      if (!absl::SimpleAtoi(part, &steps)) {
        return Fail("--stage-steps: '" + std::string(part) + "' is not an integer");
      }
      options.stage_steps.push_back(steps);
    }
  }
  if (flags.count("guidance") != 0) {
    double w = 0;
    if (!absl::SimpleAtod(flags["guidance"], &w)) return Fail("--guidance: not a number");
    options.guidance_scale = w;
  }
  if (flags.count("solver") != 0) {
    auto solver = tpdiff::core::ParseFlowSolver(flags["solver"]);
    if (!solver.ok()) return Fail("--" + std::string(solver.status().message()));
    options.solver = *solver;
  }
  if (threads > 0) at::set_num_threads(threads);

  std::ifstream in(flags["prompts"]);
  if (!in) return Fail("--prompts: cannot read " + flags["prompts"]);
  std::stringstream text;
  text << in.rdbuf();
  auto prompts = tpdiff::train::ParsePromptList(text.str(), seed);
  if (!prompts.ok()) return Fail(std::string(prompts.status().message()));

  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(flags["device"]);
  } catch (const std::exception&) {
    return Fail("--device: '" + flags["device"] + "' is not a device (cpu, cuda, cuda:N)");
  }
  auto model = tpdiff::model::LoadModelPackage(flags["model"], device);
  if (!model.ok()) return Fail(model.status().ToString());

  const auto begin = std::chrono::steady_clock::now();
  int adherent = 0;
  auto progress = [&](int done, int total, const EvalVideoResult& r) {
    adherent += r.score.adherent;
    constexpr int kWidth = 30;
    const int filled = done * kWidth / total;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    const double eta = elapsed / done * (total - done);
    std::fprintf(stderr, "\r[%s%s] %d/%d  %.2f s/video  adherent %d/%d  eta %.0f s ",
                 std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                 done, total, elapsed / done, adherent, done, eta);
    if (done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
  auto report = tpdiff::train::RunEval(**model, *prompts, options, flags["out"], progress);
  if (!report.ok()) return Fail(report.status().ToString());
  const auto& t = report->totals;
  std::printf(
      "%s sampler, %d steps: adherence %.3f (single %.3f of %d, two %.3f of %d)  "
      "background %.3f count %.3f color %.3f shape %.3f direction %.3f speed %.3f  "
      "jerk %.3f  frame change %.4f  %.3f s/video\n",
      report->info.sampler.c_str(), report->info.total_steps, t.adherence,
      t.single_object_adherence, t.single_object_videos, t.two_object_adherence,
      t.two_object_videos, t.background, t.count, t.color, t.shape, t.direction, t.speed, t.jerk,
      t.frame_change, t.seconds_per_video);
  std::printf("wrote %s/results.json and %s/grid.png\n", flags["out"].c_str(),
              flags["out"].c_str());
  return 0;
}
