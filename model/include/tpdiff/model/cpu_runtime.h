#ifndef TPDIFF_MODEL_CPU_RUNTIME_H_
#define TPDIFF_MODEL_CPU_RUNTIME_H_

// CPU runtime settings every LibTorch-using binary wants (see docs: cpu-notes.md).

namespace tpdiff::model {

// LibTorch's OpenMP threads spin while waiting at barriers (libgomp's default ACTIVE policy).
// On a machine whose cores are shared with other busy processes a descheduled spinner stalls
// every parallel op: measured here with 2 threads on 2 busy cores, a forward pass took 1.7 s
// instead of 31 ms, a training step 2.5 s instead of 0.6 s. libgomp reads OMP_WAIT_POLICY only
// when it is loaded, so when the variable is unset this sets it to PASSIVE and re-executes the
// program (/proc/self/exe) with the same arguments. Call first thing in main(); returns
// normally when the variable was already set or re-execution is impossible.
void ReexecWithPassiveOpenMpWait(char** argv);

// Sets LibTorch's intra-op threads to common::IntraOpThreads(requested): `requested` > 0,
// else the number of cores. Returns it.
int ConfigureCpuThreads(int requested);

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_CPU_RUNTIME_H_
