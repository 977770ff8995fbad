#include "tpdiff/common/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

namespace tpdiff::common {
namespace {

// The handler's only channel: write(2) on a pipe is async-signal-safe.
int signal_pipe[2] = {-1, -1};

void OnShutdownSignal(int signal_number) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(signal_number);
  (void)!write(signal_pipe[1], &byte, 1);
  errno = saved_errno;
}

sigset_t ShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

}  // namespace

void CatchShutdownSignals() {
  if (signal_pipe[0] < 0 && pipe2(signal_pipe, O_CLOEXEC) != 0) std::abort();
  struct sigaction action = {};
  action.sa_handler = OnShutdownSignal;
  action.sa_flags = SA_RESTART;  // other threads' system calls go on after the handler
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  const sigset_t signals = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

int WaitForShutdownSignal() {
  // The waiting thread takes the signals itself when no library thread does.
  const sigset_t signals = ShutdownSignals();
  pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
  unsigned char byte = 0;
  while (read(signal_pipe[0], &byte, 1) != 1) {
    if (errno != EINTR) std::abort();  // the pipe is this file's own; it cannot fail
  }
  return byte;
}

}  // namespace tpdiff::common
