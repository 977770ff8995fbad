#ifndef TPDIFF_WORKER_EVENT_SINK_H_
#define TPDIFF_WORKER_EVENT_SINK_H_

#include "tpdiff/worker/v1/worker.pb.h"

namespace tpdiff::worker {

// Where the job runner's events go: the gateway stream in production, a recorder in tests.
//
// Thread safety: Emit is called concurrently from every slot thread; implementations lock.
// It may block briefly (back-pressure while the stream drains) but must not call back into
// the JobRunner. Events of one job arrive in the order the job produced them.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Emit(tpdiff::worker::v1::WorkerEvent event) = 0;
};

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_EVENT_SINK_H_
