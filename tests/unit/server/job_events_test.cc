#include "tpdiff/server/job_events.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tpdiff/server/clock.h"

namespace tpdiff::server {
namespace {

using tpdiff::v1::JobEvent;

JobRun SampleRun() {
  JobRun run;
  run.worker_id = "w1";
  run.attempt = 2;
  run.created_at = absl::FromUnixSeconds(1000);
  run.assigned_at = absl::FromUnixSeconds(1004);
  run.num_frames = 16;
  return run;
}

TEST(TranslateWorkerEventTest, StartedNamesTheWorkerAndTheFrontsAttempt) {
  JobEvent started;
  started.mutable_started()->set_attempt(7);
  TranslatedEvent out = TranslateWorkerEvent(started, SampleRun(), absl::FromUnixSeconds(1005));
  EXPECT_EQ(out.action, WorkerEventAction::kAppend);
  EXPECT_EQ(out.event.started().worker_id(), "w1");
  EXPECT_EQ(out.event.started().attempt(), 2u);
}

TEST(TranslateWorkerEventTest, CompletedGetsTheFrontsQueueAndTotalTimes) {
  JobEvent completed;
  completed.mutable_completed()->mutable_timings()->add_stage_seconds(1.5);
  TranslatedEvent out = TranslateWorkerEvent(completed, SampleRun(), absl::FromUnixSeconds(1010));
  EXPECT_EQ(out.action, WorkerEventAction::kFinish);
  EXPECT_DOUBLE_EQ(out.event.completed().timings().queue_seconds(), 4.0);
  EXPECT_DOUBLE_EQ(out.event.completed().timings().total_seconds(), 10.0);
  EXPECT_DOUBLE_EQ(out.event.completed().timings().stage_seconds(0), 1.5);
}

TEST(TranslateWorkerEventTest, FailureWithoutCodeIsInternalCancelRequeuesFrontEventsIgnored) {
  JobEvent failed;
  failed.mutable_failed()->set_message("boom");
  TranslatedEvent out = TranslateWorkerEvent(failed, SampleRun(), absl::FromUnixSeconds(1010));
  EXPECT_EQ(out.action, WorkerEventAction::kFinish);
  EXPECT_EQ(out.event.failed().code(), static_cast<int>(absl::StatusCode::kInternal));

  JobEvent cancelled;
  cancelled.mutable_cancelled()->set_source("shutdown");
  EXPECT_EQ(TranslateWorkerEvent(cancelled, SampleRun(), absl::Now()).action,
            WorkerEventAction::kRequeue);
  JobEvent queued;
  queued.mutable_queued();
  EXPECT_EQ(TranslateWorkerEvent(queued, SampleRun(), absl::Now()).action, WorkerEventAction::kIgnore);
  JobEvent progress;
  progress.mutable_progress();
  EXPECT_EQ(TranslateWorkerEvent(progress, SampleRun(), absl::Now()).action, WorkerEventAction::kAppend);
}

TEST(JobEventLogTest, RecordsAppendsAndEndsTheJobOnce) {
  FakeClock clock;
  InMemoryJobStore store(clock, absl::Hours(1), 1 << 20);
  prometheus::Registry registry;
  ServerMetrics metrics(registry);
  JobEventLog log(store, metrics);
  tpdiff::v1::GenerateRequest request;
  request.set_request_id("key");
  ASSERT_TRUE(log.Create("job-1", request, "acme", clock.Now(), 3).ok());
  EXPECT_EQ(log.Create("job-1", request, "acme", clock.Now(), 3).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store.Next("job-1", 0)->event->queued().position(), 3u);
  EXPECT_EQ(store.FindByRequestId("acme", "key"), "job-1");
  EXPECT_EQ(store.Get("job-1")->attempt(), 1u);
  log.Requeued("job-1", 2, "lease_expired", "lease expired");
  EXPECT_EQ(store.Get("job-1")->attempt(), 2u);

  JobRun run = SampleRun();
  JobEvent preview;
  preview.mutable_stage_preview();
  EXPECT_TRUE(log.Record("job-1", run, preview, clock.Now()).ok());
  EXPECT_TRUE(run.preview_seen);
  JobEvent completed;
  completed.mutable_completed();
  EXPECT_TRUE(log.Record("job-1", run, completed, clock.Now()).ok());
  EXPECT_EQ(store.Get("job-1")->state(), tpdiff::v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(store.Get("job-1")->last_seq(), 4);
}

}  // namespace
}  // namespace tpdiff::server
