// tpdiff-bench SUBCOMMAND [flags]: benchmarks that print their figures.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "sampler_bench.h"
#ifdef TPDIFF_BENCH_SERVICE
#include "service_bench.h"
#endif

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tpdiff-bench sampler [--frames --size --stage_steps --guidance --repeats --threads --svg]\n"
      "  tpdiff-bench service [--workers=1,2,4 --jobs --network=null|tiny --worker_threads --svg]\n"
      "  tpdiff-bench preview [--model=DIR --jobs --worker_threads --svg]");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  const std::string command = positional.size() > 1 ? positional[1] : "";
  if (command == "sampler") return tpdiff::bench::RunSamplerBench();
#ifdef TPDIFF_BENCH_SERVICE
  if (command == "service") return tpdiff::bench::RunServiceBench();
  if (command == "preview") return tpdiff::bench::RunPreviewBench();
#endif
  std::fprintf(stderr, "usage: %s\n", absl::ProgramUsageMessage().data());
  return 2;
}
