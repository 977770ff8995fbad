#include "tpdiff/server/job_store.h"

#include <atomic>

#include <gtest/gtest.h>

namespace tpdiff::server {
namespace {

using tpdiff::v1::Job;
using tpdiff::v1::JobEvent;

class CountingWatcher : public JobWatcher {
 public:
  void OnJobUpdated() override { ++updates; }
  std::atomic<int> updates{0};
};

JobEvent Progress(uint32_t step) {
  JobEvent event;
  event.mutable_progress()->set_step(step);
  return event;
}

JobEvent Chunk(size_t bytes) {
  JobEvent event;
  event.mutable_result_chunk()->set_data(std::string(bytes, 'x'));
  event.mutable_result_chunk()->set_mime("video/mp4");
  event.mutable_result_chunk()->set_last(true);
  return event;
}

JobEvent Completed() {
  JobEvent event;
  event.mutable_completed()->mutable_timings()->add_stage_seconds(1.0);
  return event;
}

class JobStoreTest : public ::testing::Test {
 protected:
  void Create(const std::string& id, const std::string& request_id = "") {
    Job job;
    job.set_job_id(id);
    job.set_request_id(request_id);
    ASSERT_TRUE(store_.Create(job).ok());
  }
  FakeClock clock_;
  InMemoryJobStore store_{clock_, /*ttl=*/absl::Minutes(10), /*byte_budget=*/10000};
};

TEST_F(JobStoreTest, SeqNumbersAndStateFollowEvents) {
  Create("j1");
  EXPECT_EQ(store_.Get("j1")->state(), tpdiff::v1::JOB_STATE_QUEUED);
  JobEvent started;
  started.mutable_started()->set_worker_id("w");
  started.mutable_started()->set_attempt(1);
  EXPECT_EQ(*store_.Append("j1", started), 1);
  EXPECT_EQ(store_.Get("j1")->state(), tpdiff::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(*store_.Append("j1", Progress(1)), 2);
  EXPECT_EQ(*store_.Append("j1", Chunk(100)), 3);
  EXPECT_EQ(*store_.Append("j1", Completed()), 4);
  Job job = *store_.Get("j1");
  EXPECT_EQ(job.state(), tpdiff::v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(job.last_seq(), 4);
  EXPECT_EQ(job.result_bytes(), 100u);
  EXPECT_EQ(job.result_mime(), "video/mp4");
  EXPECT_TRUE(job.has_finished_at());
  // Nothing is appended after the end.
  EXPECT_EQ(store_.Append("j1", Progress(2)).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_.Append("nope", Progress(1)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, ReplayFromAnySeqThenFinished) {
  Create("j1");
  for (uint32_t step = 1; step <= 3; ++step) ASSERT_TRUE(store_.Append("j1", Progress(step)).ok());
  EventRead read = *store_.Next("j1", 1);
  ASSERT_NE(read.event, nullptr);
  EXPECT_EQ(read.event->seq(), 2);
  EXPECT_EQ(read.event->job_id(), "j1");
  EXPECT_EQ(read.event->progress().step(), 2u);
  read = *store_.Next("j1", 3);
  EXPECT_EQ(read.event, nullptr);
  EXPECT_FALSE(read.finished);  // still running: the reader waits for more
  ASSERT_TRUE(store_.Append("j1", Completed()).ok());
  EXPECT_EQ(store_.Next("j1", 3)->event->seq(), 4);
  EXPECT_TRUE(store_.Next("j1", 4)->finished);
}

TEST_F(JobStoreTest, WatchersAreNotifiedAndCanLeave) {
  Create("j1");
  auto watcher = std::make_shared<CountingWatcher>();
  ASSERT_TRUE(store_.Watch("j1", watcher).ok());
  EXPECT_EQ(store_.Watch("nope", watcher).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_.Append("j1", Progress(1)).ok());
  ASSERT_TRUE(store_.Append("j1", Progress(2)).ok());
  EXPECT_EQ(watcher->updates, 2);
  store_.Unwatch("j1", watcher.get());
  ASSERT_TRUE(store_.Append("j1", Progress(3)).ok());
  EXPECT_EQ(watcher->updates, 2);
}

TEST_F(JobStoreTest, RequestIdIndex) {
  Create("j1", "req-1");
  EXPECT_EQ(store_.FindByRequestId("req-1"), "j1");
  EXPECT_FALSE(store_.FindByRequestId("req-2").has_value());
  Job again;
  again.set_job_id("j1");
  EXPECT_EQ(store_.Create(again).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(JobStoreTest, FinishedJobsExpireAfterTtl) {
  Create("done", "req-done");
  Create("running");
  ASSERT_TRUE(store_.Append("done", Completed()).ok());
  ASSERT_TRUE(store_.Append("running", Progress(1)).ok());
  clock_.Advance(absl::Minutes(9));
  store_.Evict();
  EXPECT_TRUE(store_.Get("done").ok());
  clock_.Advance(absl::Minutes(2));
  store_.Evict();
  EXPECT_EQ(store_.Get("done").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(store_.FindByRequestId("req-done").has_value());  // the key is free again
  EXPECT_TRUE(store_.Get("running").ok());  // running jobs never expire
}

TEST_F(JobStoreTest, ByteBudgetEvictsOldestFinishedFirst) {
  for (const char* id : {"a", "b", "c"}) Create(id);
  ASSERT_TRUE(store_.Append("a", Chunk(3000)).ok());
  ASSERT_TRUE(store_.Append("a", Completed()).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(store_.Append("b", Chunk(3000)).ok());
  ASSERT_TRUE(store_.Append("b", Completed()).ok());
  ASSERT_TRUE(store_.Append("c", Chunk(3000)).ok());  // c runs: 9000+ bytes, under 10000
  EXPECT_TRUE(store_.Get("a").ok());
  ASSERT_TRUE(store_.Append("c", Chunk(3000)).ok());  // over budget: a (oldest finished) goes
  EXPECT_EQ(store_.Get("a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_.Get("b").ok());
  EXPECT_TRUE(store_.Get("c").ok());
  EXPECT_LE(store_.bytes(), 10000u);
}

TEST_F(JobStoreTest, ByteBudgetSparesJobsBeingRead) {
  for (const char* id : {"a", "b", "c"}) Create(id);
  auto watcher = std::make_shared<CountingWatcher>();
  ASSERT_TRUE(store_.Watch("a", watcher).ok());
  ASSERT_TRUE(store_.Append("a", Chunk(4000)).ok());
  ASSERT_TRUE(store_.Append("a", Completed()).ok());
  ASSERT_TRUE(store_.Append("b", Chunk(4000)).ok());
  ASSERT_TRUE(store_.Append("b", Completed()).ok());
  ASSERT_TRUE(store_.Append("c", Chunk(4000)).ok());
  EXPECT_TRUE(store_.Get("a").ok());
  EXPECT_EQ(store_.Get("b").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tpdiff::server
