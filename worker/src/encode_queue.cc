#include "tpdiff/worker/encode_queue.h"

#include <utility>

namespace tpdiff::worker {

EncodeQueue::EncodeQueue(int max_encodes) : max_encodes_(max_encodes < 0 ? 0 : max_encodes) {
  if (max_encodes_ > 0) thread_ = std::thread([this] { Loop(); });
}

EncodeQueue::~EncodeQueue() {
  if (!thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

bool EncodeQueue::HasRoom(bool encode) const {
  if (tasks_.size() >= kMaxTasks) return false;
  return !encode || encodes_ < max_encodes_;
}

void EncodeQueue::Post(std::function<void()> task, bool encode) {
  if (inline_mode()) {
    task();
    return;
  }
  absl::MutexLock lock(&mu_);
  auto room = [this, encode] {
    mu_.AssertHeld();  // Await evaluates it with mu_ held
    return HasRoom(encode);
  };
  mu_.Await(absl::Condition(&room));
  tasks_.push_back({std::move(task), encode});
  if (encode) ++encodes_;
}

void EncodeQueue::WaitIdle() {
  if (inline_mode()) return;
  absl::MutexLock lock(&mu_);
  auto idle = [this] {
    mu_.AssertHeld();
    return tasks_.empty() && !running_;
  };
  mu_.Await(absl::Condition(&idle));
}

void EncodeQueue::Loop() {
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] {
        mu_.AssertHeld();
        return stopping_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
      running_ = true;
    }
    task.run();
    absl::MutexLock lock(&mu_);
    running_ = false;
    if (task.encode) --encodes_;  // room for the next encode only once this one is done
  }
}

}  // namespace tpdiff::worker
