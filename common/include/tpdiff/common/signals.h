#ifndef TPDIFF_COMMON_SIGNALS_H_
#define TPDIFF_COMMON_SIGNALS_H_

#include <signal.h>

namespace tpdiff::common {

// Blocks SIGINT and SIGTERM in the calling thread, and so in every thread it starts later,
// leaving them to WaitForShutdownSignal. Call in main before any thread starts; returns the
// blocked set.
sigset_t BlockShutdownSignals();

// Waits for the next SIGINT or SIGTERM blocked by BlockShutdownSignals; returns its number.
int WaitForShutdownSignal(const sigset_t& signals);

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_SIGNALS_H_
