// ThreadSanitizer builds only (-DTPDIFF_SANITIZE=thread links this into every target).
//
// Debian's Abseil is a shared library built without TSan, so absl::Mutex, CondVar and
// Notification synchronize invisibly to TSan: every field guarded by an absl::Mutex would be
// reported as a race. This shim interposes the exported entry points (the executable's
// definitions win over libabsl_synchronization.so's), forwards to the real ones via
// dlsym(RTLD_NEXT) and tells TSan about the happens-before edges they create: release on the
// mutex address before unlocking (or waiting), acquire after locking (or waking). While the
// real function runs, TSan ignores memory accesses: Abseil evaluates absl::Condition callbacks
// (our instrumented lambdas) inside Lock/Unlock, on whichever thread holds the lock.
//
// Symbols are named by their mangled names for Abseil 20220623 as Debian builds it (inline
// namespace debian3); a missing symbol aborts with its name, so a new Abseil cannot silently
// turn this off.

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" {
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
}

namespace {

void* Real(const char* symbol) {
  void* fn = dlsym(RTLD_NEXT, symbol);
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found in Abseil\n", symbol);
    std::abort();
  }
  return fn;
}

struct Ignore {  // TSan ignores accesses while the real (uninstrumented) function runs
  Ignore() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~Ignore() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
};

using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Notification;
using absl::Time;

}  // namespace

// Defines `ret name(params)` with assembler name `mangled`, calling the real one with `args`;
// `before` and `after` (which may use `result`) add the TSan annotations.
#define TPDIFF_INTERPOSE(ret, name, mangled, params, args, before, after)      \
  extern "C" ret name params __asm__(mangled);                                 \
  extern "C" ret name params {                                                 \
    using Fn = ret(*) params;                                                  \
    static const Fn real = reinterpret_cast<Fn>(Real(mangled));                \
    before;                                                                    \
    ret result;                                                                \
    {                                                                          \
      Ignore ignore;                                                           \
      result = real args;                                                      \
    }                                                                          \
    after;                                                                     \
    return result;                                                             \
  }
#define TPDIFF_INTERPOSE_VOID(name, mangled, params, args, before, after)      \
  extern "C" void name params __asm__(mangled);                                \
  extern "C" void name params {                                                \
    using Fn = void (*) params;                                                \
    static const Fn real = reinterpret_cast<Fn>(Real(mangled));                \
    before;                                                                    \
    {                                                                          \
      Ignore ignore;                                                           \
      real args;                                                               \
    }                                                                          \
    after;                                                                     \
  }

#define ACQ(p) __tsan_acquire(static_cast<void*>(p))
#define REL(p) __tsan_release(static_cast<void*>(p))

TPDIFF_INTERPOSE_VOID(tsan_mutex_lock, "_ZN4absl7debian35Mutex4LockEv", (Mutex* mu), (mu), , ACQ(mu))
TPDIFF_INTERPOSE_VOID(tsan_mutex_reader_lock, "_ZN4absl7debian35Mutex10ReaderLockEv", (Mutex* mu), (mu), , ACQ(mu))
TPDIFF_INTERPOSE_VOID(tsan_mutex_unlock, "_ZN4absl7debian35Mutex6UnlockEv", (Mutex* mu), (mu), REL(mu), )
TPDIFF_INTERPOSE_VOID(tsan_mutex_reader_unlock, "_ZN4absl7debian35Mutex12ReaderUnlockEv", (Mutex* mu), (mu), REL(mu), )
TPDIFF_INTERPOSE(bool, tsan_mutex_try_lock, "_ZN4absl7debian35Mutex7TryLockEv", (Mutex* mu), (mu), , if (result) ACQ(mu))
TPDIFF_INTERPOSE(bool, tsan_mutex_reader_try_lock, "_ZN4absl7debian35Mutex13ReaderTryLockEv", (Mutex* mu), (mu), , if (result) ACQ(mu))
TPDIFF_INTERPOSE_VOID(tsan_mutex_lock_when, "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE",
                      (Mutex* mu, const Condition& c), (mu, c), , ACQ(mu))
TPDIFF_INTERPOSE_VOID(tsan_mutex_reader_lock_when, "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE",
                      (Mutex* mu, const Condition& c), (mu, c), , ACQ(mu))
TPDIFF_INTERPOSE(bool, tsan_mutex_lock_when_timeout,
                 "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                 (Mutex* mu, const Condition& c, Duration d), (mu, c, d), , ACQ(mu))
TPDIFF_INTERPOSE(bool, tsan_mutex_lock_when_deadline,
                 "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                 (Mutex* mu, const Condition& c, Time t), (mu, c, t), , ACQ(mu))
// Await releases the mutex while it waits and holds it again when it returns.
TPDIFF_INTERPOSE_VOID(tsan_mutex_await, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE",
                      (Mutex* mu, const Condition& c), (mu, c), REL(mu), ACQ(mu))
TPDIFF_INTERPOSE(bool, tsan_mutex_await_timeout,
                 "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                 (Mutex* mu, const Condition& c, Duration d), (mu, c, d), REL(mu), ACQ(mu))
TPDIFF_INTERPOSE(bool, tsan_mutex_await_deadline,
                 "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                 (Mutex* mu, const Condition& c, Time t), (mu, c, t), REL(mu), ACQ(mu))
TPDIFF_INTERPOSE_VOID(tsan_condvar_wait, "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE",
                      (CondVar* cv, Mutex* mu), (cv, mu), REL(mu), ACQ(mu))
TPDIFF_INTERPOSE(bool, tsan_condvar_wait_timeout,
                 "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE",
                 (CondVar* cv, Mutex* mu, Duration d), (cv, mu, d), REL(mu), ACQ(mu))
TPDIFF_INTERPOSE(bool, tsan_condvar_wait_deadline,
                 "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE",
                 (CondVar* cv, Mutex* mu, Time t), (cv, mu, t), REL(mu), ACQ(mu))
TPDIFF_INTERPOSE_VOID(tsan_notification_notify, "_ZN4absl7debian312Notification6NotifyEv",
                      (Notification* n), (n), REL(n), )
TPDIFF_INTERPOSE_VOID(tsan_notification_wait, "_ZNK4absl7debian312Notification19WaitForNotificationEv",
                      (const Notification* n), (n), , ACQ(const_cast<Notification*>(n)))
TPDIFF_INTERPOSE(bool, tsan_notification_wait_timeout,
                 "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
                 (const Notification* n, Duration d), (n, d), , if (result) ACQ(const_cast<Notification*>(n)))
TPDIFF_INTERPOSE(bool, tsan_notification_wait_deadline,
                 "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE",
                 (const Notification* n, Time t), (n, t), , if (result) ACQ(const_cast<Notification*>(n)))
