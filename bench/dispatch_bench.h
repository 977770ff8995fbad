#ifndef TPDIFF_BENCH_DISPATCH_BENCH_H_
#define TPDIFF_BENCH_DISPATCH_BENCH_H_

namespace tpdiff::bench {

// `tpdiff-bench-dispatch`: the front's Dispatcher in this process, without gRPC, driven by
// simulated workers that answer each assigned job at once with started and completed events.
// For each --sim_workers count prints: jobs/s and CPU per job while --queued_jobs jobs drain,
// submit -> assign latency (p50/p99) with a free worker, and the CPU share of one core that
// heartbeats alone cost (every worker heartbeating each --heartbeat_interval). Returns the
// exit code.
int RunDispatchBench();

}  // namespace tpdiff::bench

#endif  // TPDIFF_BENCH_DISPATCH_BENCH_H_
