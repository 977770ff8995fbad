#ifndef TPDIFF_SERVER_CLOCK_H_
#define TPDIFF_SERVER_CLOCK_H_

// The server's time source is tpdiff::common::Clock (shared with the worker); these names
// keep the server's own spelling.
#include "tpdiff/common/clock.h"

namespace tpdiff::server {

using ::tpdiff::common::Clock;
using ::tpdiff::common::FakeClock;
using ::tpdiff::common::RealClock;

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_CLOCK_H_
