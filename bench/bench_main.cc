// tpdiff-bench SUBCOMMAND [flags]: benchmarks that print their figures.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "sampler_bench.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tpdiff-bench sampler [--frames --size --stage_steps --guidance --repeats --threads --svg]");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  const std::string command = positional.size() > 1 ? positional[1] : "";
  if (command == "sampler") return tpdiff::bench::RunSamplerBench();
  std::fprintf(stderr, "usage: %s\n", absl::ProgramUsageMessage().data());
  return 2;
}
