// tpdiff-bench-dispatch [--sim_workers=1000,5000 --queued_jobs --latency_jobs
//     --heartbeat_interval --idle_seconds]: the Dispatcher with simulated workers.
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "dispatch_bench.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tpdiff-bench-dispatch [--sim_workers=1000,5000 --queued_jobs=10000 --latency_jobs=10000 "
      "--heartbeat_interval=2s --idle_seconds=5]");
  absl::ParseCommandLine(argc, argv);
  return tpdiff::bench::RunDispatchBench();
}
