#ifndef TPDIFF_WORKER_ENCODE_QUEUE_H_
#define TPDIFF_WORKER_ENCODE_QUEUE_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tpdiff::worker {

// A slot's encoder thread: runs the tasks a slot posts (preview and result encodes, and the
// emission of every job event) one at a time, in the order they were posted, so a job's
// events leave in the order the sampler produced them while the slot samples on.
//
// Memory stays bounded: Post blocks while `max_encodes` encode tasks (each holds a clip's
// frames) or kMaxTasks tasks in all are waiting, which also passes the event stream's
// back-pressure on to the sampler. With max_encodes = 0 there is no thread: Post runs the
// task on the caller's thread before returning (encoding inline, on the sampling thread).
//
// Thread safety: Post and WaitIdle may be called from any thread; a task must not Post to
// the queue that runs it. The destructor runs the tasks still queued, then joins the thread.
class EncodeQueue {
 public:
  static constexpr size_t kMaxTasks = 256;

  explicit EncodeQueue(int max_encodes);
  ~EncodeQueue();
  EncodeQueue(const EncodeQueue&) = delete;
  EncodeQueue& operator=(const EncodeQueue&) = delete;

  // Queues `task`; `encode` marks one that holds frames to encode (counted by max_encodes).
  void Post(std::function<void()> task, bool encode);
  // Blocks until every task posted before has run.
  void WaitIdle();
  bool inline_mode() const { return max_encodes_ == 0; }

 private:
  struct Task {
    std::function<void()> run;
    bool encode = false;
  };
  void Loop();
  bool HasRoom(bool encode) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int max_encodes_;
  absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  int encodes_ ABSL_GUARDED_BY(mu_) = 0;  // encode tasks queued or running
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_ENCODE_QUEUE_H_
