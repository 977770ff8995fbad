// tpdiff-bench-dispatch [--sim_workers=1000,5000 --queued_jobs --latency_jobs
//     --heartbeat_interval --idle_seconds]: the Dispatcher with simulated workers.
#include "dispatch_bench.h"
#include "tpdiff/common/flags.h"

int main(int argc, char** argv) {
  tpdiff::common::ParseCommandLine(
      argc, argv,
      "tpdiff-bench-dispatch [--sim_workers=1000,5000 --queued_jobs=10000 --latency_jobs=10000 "
      "--heartbeat_interval=2s --idle_seconds=5]");
  return tpdiff::bench::RunDispatchBench();
}
