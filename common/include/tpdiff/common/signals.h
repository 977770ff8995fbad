#ifndef TPDIFF_COMMON_SIGNALS_H_
#define TPDIFF_COMMON_SIGNALS_H_

namespace tpdiff::common {

// Turns SIGINT and SIGTERM from "end the process" into events for WaitForShutdownSignal,
// whichever thread the kernel delivers them to. Blocking the signals and calling sigwait is
// not enough: libraries start threads before main runs (OpenBLAS starts its pool when it is
// loaded), those threads never block the signals, and a signal delivered to one of them ends
// the process. The calling thread blocks both signals, so threads it starts later never run
// the handler. Call once, first thing in main.
void CatchShutdownSignals();

// Blocks until the next SIGINT or SIGTERM caught by CatchShutdownSignals and returns its
// number; signals that arrived while no thread waited are returned in order. Call from one
// thread at a time (a main or a dedicated signal thread).
int WaitForShutdownSignal();

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_SIGNALS_H_
