#include "tpdiff/server/job_queue.h"

#include <gtest/gtest.h>

#include "tpdiff/server/clock.h"

namespace tpdiff::server {
namespace {

using tpdiff::v1::PRIORITY_BATCH;
using tpdiff::v1::PRIORITY_INTERACTIVE;
using tpdiff::v1::PRIORITY_STANDARD;


class JobQueueTest : public ::testing::Test {
 protected:
  QueuedJob Job(const std::string& id, tpdiff::v1::Priority priority, const std::string& model = "m") {
    return QueuedJob{id, priority, model, clock_.Now()};
  }
  std::string PopId() {
    std::optional<QueuedJob> job = queue_.Pop(clock_.Now(), {"m"});
    return job ? job->job_id : "";
  }
  FakeClock clock_;
  PriorityJobQueue queue_{/*capacity_per_priority=*/3, /*aging_interval=*/absl::Seconds(10)};
};

TEST_F(JobQueueTest, HigherPriorityFirstFifoWithin) {
  ASSERT_TRUE(queue_.Push(Job("b1", PRIORITY_BATCH)).ok());
  ASSERT_TRUE(queue_.Push(Job("s1", PRIORITY_STANDARD)).ok());
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(queue_.Push(Job("s2", PRIORITY_STANDARD)).ok());
  ASSERT_TRUE(queue_.Push(Job("i1", PRIORITY_INTERACTIVE)).ok());
  EXPECT_EQ(queue_.Position("i1", clock_.Now()), 0u);
  EXPECT_EQ(queue_.Position("s2", clock_.Now()), 2u);
  EXPECT_EQ(queue_.Position("b1", clock_.Now()), 3u);
  EXPECT_EQ(PopId(), "i1");
  EXPECT_EQ(PopId(), "s1");
  EXPECT_EQ(PopId(), "s2");
  EXPECT_EQ(PopId(), "b1");
  EXPECT_EQ(PopId(), "");
}

TEST_F(JobQueueTest, CapacityPerPriority) {
  for (const char* id : {"s1", "s2", "s3"}) ASSERT_TRUE(queue_.Push(Job(id, PRIORITY_STANDARD)).ok());
  absl::Status full = queue_.Push(Job("s4", PRIORITY_STANDARD));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("PRIORITY_STANDARD"), std::string::npos) << full;
  EXPECT_NE(full.message().find("3 jobs"), std::string::npos) << full;
  EXPECT_TRUE(queue_.Full(PRIORITY_STANDARD));
  EXPECT_FALSE(queue_.Full(PRIORITY_BATCH));
  EXPECT_TRUE(queue_.Push(Job("b1", PRIORITY_BATCH)).ok());
  // A re-queued job was already admitted: it goes in even when full.
  queue_.PushFront(Job("r1", PRIORITY_STANDARD));
  EXPECT_EQ(queue_.Size(PRIORITY_STANDARD), 4u);
  EXPECT_EQ(PopId(), "r1");
}

TEST_F(JobQueueTest, AgingLetsOldBatchJobsOvertakeNewInteractiveOnes) {
  ASSERT_TRUE(queue_.Push(Job("old-batch", PRIORITY_BATCH)).ok());
  clock_.Advance(absl::Seconds(15));  // one level: BATCH now competes as STANDARD
  ASSERT_TRUE(queue_.Push(Job("new-interactive", PRIORITY_INTERACTIVE)).ok());
  ASSERT_TRUE(queue_.Push(Job("new-standard", PRIORITY_STANDARD)).ok());
  EXPECT_EQ(PopId(), "new-interactive");
  EXPECT_EQ(PopId(), "old-batch");  // same level as new-standard, and older
  EXPECT_EQ(PopId(), "new-standard");

  ASSERT_TRUE(queue_.Push(Job("batch", PRIORITY_BATCH)).ok());
  clock_.Advance(absl::Seconds(20));  // two levels: equal to a fresh INTERACTIVE job
  ASSERT_TRUE(queue_.Push(Job("interactive", PRIORITY_INTERACTIVE)).ok());
  EXPECT_EQ(PopId(), "batch");
}

TEST_F(JobQueueTest, PopSkipsJobsTheWorkerCannotRun) {
  ASSERT_TRUE(queue_.Push(Job("a", PRIORITY_INTERACTIVE, "model-a")).ok());
  ASSERT_TRUE(queue_.Push(Job("b", PRIORITY_STANDARD, "model-b")).ok());
  std::optional<QueuedJob> job =
      queue_.Pop(clock_.Now(), {"model-b"});
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->job_id, "b");
  EXPECT_FALSE(queue_.Pop(clock_.Now(), {"c"}));
  EXPECT_EQ(queue_.TotalSize(), 1u);
}

TEST_F(JobQueueTest, RemoveAndExpire) {
  QueuedJob soon = Job("soon", PRIORITY_STANDARD);
  soon.deadline = clock_.Now() + absl::Seconds(5);
  ASSERT_TRUE(queue_.Push(soon).ok());
  ASSERT_TRUE(queue_.Push(Job("never", PRIORITY_STANDARD)).ok());
  ASSERT_TRUE(queue_.Push(Job("gone", PRIORITY_BATCH)).ok());
  EXPECT_TRUE(queue_.Remove("gone"));
  EXPECT_FALSE(queue_.Remove("gone"));
  EXPECT_TRUE(queue_.TakeExpired(clock_.Now()).empty());
  clock_.Advance(absl::Seconds(5));
  std::vector<QueuedJob> expired = queue_.TakeExpired(clock_.Now());
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].job_id, "soon");
  EXPECT_EQ(queue_.TotalSize(), 1u);
  EXPECT_FALSE(queue_.Position("soon", clock_.Now()).has_value());
}


TEST_F(JobQueueTest, AheadOfANewJobIsItsPositionOnceQueued) {
  // A mix of priorities and ages, a re-queued job in front, and one job aged past STANDARD.
  ASSERT_TRUE(queue_.Push(Job("b-old", PRIORITY_BATCH)).ok());
  clock_.Advance(absl::Seconds(12));
  ASSERT_TRUE(queue_.Push(Job("b-new", PRIORITY_BATCH)).ok());
  ASSERT_TRUE(queue_.Push(Job("s1", PRIORITY_STANDARD)).ok());
  queue_.PushFront(Job("s-requeued", PRIORITY_STANDARD));
  clock_.Advance(absl::Seconds(9));  // b-old has waited 21 s: two levels
  int n = 0;
  for (tpdiff::v1::Priority priority : {PRIORITY_INTERACTIVE, PRIORITY_STANDARD, PRIORITY_BATCH}) {
    const std::string id = "new-" + std::to_string(n++);
    const size_t ahead = queue_.Ahead(priority, clock_.Now());
    ASSERT_TRUE(queue_.Push(Job(id, priority)).ok());
    EXPECT_EQ(queue_.Position(id, clock_.Now()), ahead) << tpdiff::v1::Priority_Name(priority);
    EXPECT_TRUE(queue_.Remove(id));
  }
  EXPECT_EQ(queue_.Ahead(PRIORITY_INTERACTIVE, clock_.Now()), 1u);  // b-old only
  EXPECT_EQ(queue_.Ahead(PRIORITY_STANDARD, clock_.Now()), 3u);     // 2 STANDARD + b-old
  clock_.Advance(absl::Seconds(5));  // the STANDARD jobs and b-new have waited 14 s
  EXPECT_TRUE(queue_.Remove("b-old"));  // counted as aged: the counts follow
  EXPECT_EQ(queue_.Ahead(PRIORITY_INTERACTIVE, clock_.Now()), 2u);
  EXPECT_EQ(queue_.Ahead(PRIORITY_STANDARD, clock_.Now()), 3u);
}

TEST_F(JobQueueTest, TakeModelTakesOnlyThatModelsJobsQueuedByTheInstant) {
  ASSERT_TRUE(queue_.Push(Job("a1", PRIORITY_STANDARD, "a")).ok());
  ASSERT_TRUE(queue_.Push(Job("b1", PRIORITY_BATCH, "b")).ok());
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(queue_.Push(Job("a2", PRIORITY_INTERACTIVE, "a")).ok());
  EXPECT_EQ(queue_.Models(), (std::vector<std::string>{"a", "b"}));
  std::vector<QueuedJob> taken = queue_.TakeModel("a", clock_.Now() - absl::Seconds(1));
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].job_id, "a1");
  EXPECT_EQ(queue_.TotalSize(), 2u);
  EXPECT_EQ(queue_.TakeModel("a", clock_.Now()).size(), 1u);
  EXPECT_EQ(queue_.Models(), (std::vector<std::string>{"b"}));
}

}  // namespace
}  // namespace tpdiff::server
