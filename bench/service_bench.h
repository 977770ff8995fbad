#ifndef TPDIFF_BENCH_SERVICE_BENCH_H_
#define TPDIFF_BENCH_SERVICE_BENCH_H_

namespace tpdiff::bench {

// `tpdiff-bench service`: a front (tpdiff::server::FrontServer in this process, real gRPC on
// 127.0.0.1) with 1, 2 and 4 tpdiff-worker child processes serving a network that costs next
// to nothing; prints the service's overhead per job (client-observed total minus the worker's
// reported sampling and encoding time, p50/p99) and jobs per second; then the same with one
// worker through 1 and 2 front replicas sharing a Redis (--redis). Returns the exit code.
int RunServiceBench();

// `tpdiff-bench preview --model DIR`: time to the first stage preview and the total job time,
// over --jobs jobs for each --encode_modes entry (encoding inline on the sampling thread, or
// overlapped on the slot's encoder thread), each on its own worker process, in the same run.
// Without --model, a random package of the cpu preset (the bundled model's size) is made in a
// temporary folder.
int RunPreviewBench();

}  // namespace tpdiff::bench

#endif  // TPDIFF_BENCH_SERVICE_BENCH_H_
