#include "tpdiff/worker/encode_queue.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace tpdiff::worker {
namespace {

TEST(EncodeQueueTest, RunsTasksOnItsOwnThreadInTheOrderPosted) {
  EncodeQueue queue(/*max_encodes=*/2);
  absl::Mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  for (int i = 0; i < 50; ++i) {
    queue.Post(
        [&, i] {
          absl::MutexLock lock(&mu);
          order.push_back(i);
          threads.push_back(std::this_thread::get_id());
        },
        /*encode=*/i % 3 == 0);
  }
  queue.WaitIdle();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
  for (const auto& id : threads) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(EncodeQueueTest, DepthZeroRunsEachTaskOnThePostingThreadBeforePostReturns) {
  EncodeQueue queue(/*max_encodes=*/0);
  EXPECT_TRUE(queue.inline_mode());
  std::thread::id ran_on;
  queue.Post([&] { ran_on = std::this_thread::get_id(); }, /*encode=*/true);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

// With one encode running and one waiting, a third encode waits for the first to finish:
// the frames held by waiting encodes stay bounded. Events (encode = false) still queue.
TEST(EncodeQueueTest, PostBlocksWhileMaxEncodesAreWaiting) {
  EncodeQueue queue(/*max_encodes=*/2);
  absl::Notification first_running, release_first;
  queue.Post(
      [&] {
        first_running.Notify();
        release_first.WaitForNotification();
      },
      /*encode=*/true);
  first_running.WaitForNotification();
  queue.Post([] {}, /*encode=*/true);   // waits behind the first: 2 encodes in the queue
  queue.Post([] {}, /*encode=*/false);  // an event is not an encode: room for it
  std::atomic<bool> third_posted{false};
  std::thread poster([&] {
    queue.Post([] {}, /*encode=*/true);
    third_posted = true;
  });
  // The poster cannot get past Post until the first encode is released.
  EXPECT_FALSE(third_posted.load());
  release_first.Notify();
  poster.join();
  EXPECT_TRUE(third_posted.load());
  queue.WaitIdle();
}

TEST(EncodeQueueTest, DestructionRunsWhatIsStillQueued) {
  std::atomic<int> ran{0};
  {
    EncodeQueue queue(/*max_encodes=*/1);
    for (int i = 0; i < 10; ++i) queue.Post([&] { ++ran; }, /*encode=*/false);
  }
  EXPECT_EQ(ran.load(), 10);
}

}  // namespace
}  // namespace tpdiff::worker
