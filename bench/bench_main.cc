// tpdiff-bench SUBCOMMAND [flags]: benchmarks that print their figures.
#include <cstdio>
#include <string>
#include <vector>

#include "latent_bench.h"
#include "model_bench.h"
#include "sampler_bench.h"
#include "tpdiff/common/flags.h"
#include "tpdiff/model/cpu_runtime.h"
#ifdef TPDIFF_BENCH_SERVICE
#include "service_bench.h"
#endif

int main(int argc, char** argv) {
  // `models` times whole videos of two models on what may be a shared machine, where
  // LibTorch's spinning OpenMP threads stall every op when descheduled (core/cpu_runtime.h);
  // tpdiff-train runs with the passive wait policy, so the bench of its packages does too.
  if (argc > 1 && (std::string(argv[1]) == "models" || std::string(argv[1]) == "latent")) {
    tpdiff::model::ReexecWithPassiveOpenMpWait(argv);
  }
  constexpr char kUsage[] =
      "tpdiff-bench sampler [--frames --size --stage_steps --guidance --repeats --threads --svg]\n"
      "  tpdiff-bench service [--workers=1,2,4 --jobs --network=null|tiny --worker_threads --svg]\n"
      "  tpdiff-bench preview [--model=DIR --jobs --preview_steps --encode_modes --worker_threads --svg]\n"
      "  tpdiff-bench models --vanilla_model=DIR [--tpdiff_model=DIR --prompts=FILE\n"
      "      --max_prompts --guidance --threads --device --out=DIR --json=FILE --svg=FILE\n"
      "      --sampler_row --warmup]\n"
      "  tpdiff-bench latent --package=DIR [--latent_steps --guidance --repeats --threads\n"
      "      --device]";
  const std::vector<std::string> positional =
      tpdiff::common::ParseCommandLine(argc, argv, kUsage);
  const std::string command = positional.size() > 1 ? positional[1] : "";
  if (command == "sampler") return tpdiff::bench::RunSamplerBench();
  if (command == "models") return tpdiff::bench::RunModelBench();
  if (command == "latent") return tpdiff::bench::RunLatentBench();
#ifdef TPDIFF_BENCH_SERVICE
  if (command == "service") return tpdiff::bench::RunServiceBench();
  if (command == "preview") return tpdiff::bench::RunPreviewBench();
#endif
  std::fprintf(stderr, "usage: %s\n", kUsage);
  return 2;
}
