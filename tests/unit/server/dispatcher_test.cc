#include "tpdiff/server/dispatcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_model.h"

namespace tpdiff::server {
namespace {

using ::testing::HasSubstr;
using testing::TinyModel;
using testing::ValidRequest;
using tpdiff::v1::GenerateRequest;
using tpdiff::v1::JobEvent;
using tpdiff::worker::v1::DispatchMessage;
using tpdiff::worker::v1::WorkerMessage;

// Records what the Dispatcher sends to one worker.
class RecordingChannel : public WorkerChannel {
 public:
  void Send(DispatchMessage message) override { sent.push_back(std::move(message)); }
  void Close(const absl::Status& status) override { closed = status; }
  std::vector<std::string> Assigned() const {
    std::vector<std::string> ids;
    for (const auto& m : sent) {
      if (m.has_assign()) ids.push_back(m.assign().job_id());
    }
    return ids;
  }
  const tpdiff::worker::v1::Assign* LastAssign() const {
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      if (it->has_assign()) return &it->assign();
    }
    return nullptr;
  }
  std::vector<std::string> Cancelled() const {
    std::vector<std::string> ids;
    for (const auto& m : sent) {
      if (m.has_cancel()) ids.push_back(m.cancel().job_id());
    }
    return ids;
  }
  std::vector<DispatchMessage> sent;
  std::optional<absl::Status> closed;
};

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() { models_.AddFromDisk(testing::TinySpec()); }

  uint64_t Connect(RecordingChannel& channel, const std::string& id, uint32_t slots = 1) {
    tpdiff::worker::v1::Hello hello;
    hello.set_worker_id(id);
    hello.add_models("tiny");
    hello.set_slots(slots);
    absl::StatusOr<uint64_t> connection = dispatcher_.ConnectWorker(hello, &channel);
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.value_or(0);
  }

  std::string Submit(GenerateRequest request = ValidRequest()) {
    absl::StatusOr<Submission> submission = dispatcher_.Submit(request);
    EXPECT_TRUE(submission.ok()) << submission.status();
    return submission.ok() ? submission->job.job_id() : "";
  }

  void Send(uint64_t connection, const std::string& job_id, uint32_t attempt, JobEvent event) {
    WorkerMessage message;
    message.mutable_event()->set_job_id(job_id);
    message.mutable_event()->set_attempt(attempt);
    *message.mutable_event()->mutable_event() = std::move(event);
    dispatcher_.OnWorkerMessage(connection, message);
  }

  void Heartbeat(uint64_t connection, std::vector<std::string> running) {
    WorkerMessage message;
    message.mutable_heartbeat()->set_free_slots(0);
    for (const std::string& id : running) message.mutable_heartbeat()->add_running_job_ids(id);
    dispatcher_.OnWorkerMessage(connection, message);
  }

  static JobEvent Started() {
    JobEvent event;
    event.mutable_started();
    return event;
  }
  static JobEvent Completed(std::vector<double> stages) {
    JobEvent event;
    for (double s : stages) event.mutable_completed()->mutable_timings()->add_stage_seconds(s);
    return event;
  }
  static JobEvent CancelledByWorker(const std::string& source) {
    JobEvent event;
    event.mutable_cancelled()->set_source(source);
    return event;
  }

  // Kinds of the job's events in seq order; checks seq has no gaps.
  std::vector<std::string> Events(const std::string& job_id) {
    std::vector<std::string> kinds;
    for (int64_t seq = 0;; ++seq) {
      absl::StatusOr<EventRead> read = store_.Next(job_id, seq);
      if (!read.ok() || read->event == nullptr) break;
      EXPECT_EQ(read->event->seq(), seq + 1);
      const auto* field = JobEvent::descriptor()->FindFieldByNumber(read->event->kind_case());
      kinds.push_back(field != nullptr ? field->name() : "?");
    }
    return kinds;
  }

  tpdiff::v1::JobState State(const std::string& job_id) { return store_.Get(job_id)->state(); }

  FakeClock clock_;
  prometheus::Registry registry_;
  ServerMetrics metrics_{registry_};
  ModelRegistry models_;
  InMemoryJobStore store_{clock_, absl::Hours(1), 1 << 30};
  DispatcherOptions options_ = [] {
    DispatcherOptions o;
    o.queue_capacity = 2;
    return o;
  }();
  Dispatcher dispatcher_{options_, clock_, models_, store_, metrics_};
};

TEST_F(DispatcherTest, WelcomeThenAssignThenEventsInOrder) {
  RecordingChannel worker;
  const uint64_t w = Connect(worker, "w1");
  ASSERT_FALSE(worker.sent.empty());
  ASSERT_TRUE(worker.sent[0].has_welcome());
  EXPECT_EQ(worker.sent[0].welcome().heartbeat_interval().seconds(), 2);
  EXPECT_EQ(worker.sent[0].welcome().lease_timeout().seconds(), 10);
  EXPECT_TRUE(dispatcher_.Ready());

  const std::string job = Submit();
  ASSERT_THAT(worker.Assigned(), ::testing::ElementsAre(job));
  const tpdiff::worker::v1::Assign& assign = *worker.LastAssign();
  EXPECT_EQ(assign.attempt(), 1u);
  EXPECT_EQ(assign.request().num_frames(), 16u);  // defaults filled in
  EXPECT_NE(assign.request().seed(), 0u);
  EXPECT_EQ(store_.Get(job)->request().seed(), assign.request().seed());  // reported in Job

  Send(w, job, 1, Started());
  EXPECT_EQ(State(job), tpdiff::v1::JOB_STATE_RUNNING);
  clock_.Advance(absl::Seconds(3));
  Send(w, job, 1, Completed({1.0, 0.5, 0.25}));
  EXPECT_THAT(Events(job), ::testing::ElementsAre("queued", "started", "completed"));
  tpdiff::v1::Job done = *store_.Get(job);
  EXPECT_EQ(done.state(), tpdiff::v1::JOB_STATE_COMPLETED);
  EXPECT_DOUBLE_EQ(done.timings().total_seconds(), 3.0);  // filled by the front
  EXPECT_EQ(store_.Next(job, 1)->event->started().worker_id(), "w1");
  EXPECT_EQ(dispatcher_.RunningJobs(), 0u);

  // The slot is free again.
  const std::string second = Submit();
  EXPECT_EQ(worker.Assigned().back(), second);
}

TEST_F(DispatcherTest, SameRequestIdSameJob) {
  GenerateRequest request = ValidRequest();
  request.set_request_id("client-key-1");
  absl::StatusOr<Submission> first = dispatcher_.Submit(request);
  absl::StatusOr<Submission> again = dispatcher_.Submit(request);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_FALSE(first->existing);
  EXPECT_TRUE(again->existing);
  EXPECT_EQ(first->job.job_id(), again->job.job_id());
  EXPECT_EQ(dispatcher_.QueuedJobs(), 1u);
  request.set_request_id("client-key-2");
  EXPECT_NE(Submit(request), first->job.job_id());
}

TEST_F(DispatcherTest, FullQueueIsResourceExhausted) {
  Submit();
  Submit();
  absl::StatusOr<Submission> third = dispatcher_.Submit(ValidRequest());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("PRIORITY_STANDARD is full"));
  GenerateRequest batch = ValidRequest();
  batch.set_priority(tpdiff::v1::PRIORITY_BATCH);
  EXPECT_TRUE(dispatcher_.Submit(batch).ok());  // other priorities have their own room
  EXPECT_FALSE(dispatcher_.Ready());
}

TEST_F(DispatcherTest, EstimatedWaitBeyondMaxQueueWaitIsRejected) {
  RecordingChannel worker;
  const uint64_t w = Connect(worker, "w1");
  const std::string first = Submit();
  clock_.Advance(absl::Seconds(20));  // recent mean job time: 20 s
  Send(w, first, 1, Completed({20}));
  Submit();  // runs on the only slot
  GenerateRequest impatient = ValidRequest();
  impatient.mutable_max_queue_wait()->set_seconds(5);
  absl::StatusOr<Submission> rejected = dispatcher_.Submit(impatient);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(rejected.status().message(), HasSubstr("exceeds the max_queue_wait"));
  EXPECT_EQ(dispatcher_.QueuedJobs(), 0u);  // nothing left behind
  impatient.mutable_max_queue_wait()->set_seconds(60);
  EXPECT_TRUE(dispatcher_.Submit(impatient).ok());
}

TEST_F(DispatcherTest, QueuedJobPastMaxQueueWaitNeverStarts) {
  GenerateRequest request = ValidRequest();
  request.mutable_max_queue_wait()->set_seconds(5);
  const std::string job = Submit(request);
  clock_.Advance(absl::Seconds(6));
  dispatcher_.Tick();
  tpdiff::v1::Job failed = *store_.Get(job);
  EXPECT_EQ(failed.state(), tpdiff::v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.error(), HasSubstr("max_queue_wait"));
  EXPECT_EQ(store_.Next(job, 1)->event->failed().code(),
            static_cast<int>(absl::StatusCode::kDeadlineExceeded));
  RecordingChannel worker;
  Connect(worker, "w1");
  EXPECT_TRUE(worker.Assigned().empty());
}

TEST_F(DispatcherTest, CallDeadlineCancelsQueuedJob) {
  absl::StatusOr<Submission> s =
      dispatcher_.Submit(ValidRequest(), clock_.Now() + absl::Seconds(3));
  ASSERT_TRUE(s.ok());
  clock_.Advance(absl::Seconds(3));
  dispatcher_.Tick();
  EXPECT_EQ(State(s->job.job_id()), tpdiff::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(store_.Next(s->job.job_id(), 1)->event->cancelled().source(), "deadline");
}

TEST_F(DispatcherTest, HeartbeatsKeepTheLeaseSilenceRequeuesToAnotherWorker) {
  RecordingChannel w1_channel, w2_channel;
  const uint64_t w1 = Connect(w1_channel, "w1");
  const std::string job = Submit();
  Send(w1, job, 1, Started());
  for (int i = 0; i < 5; ++i) {  // 40 s of heartbeats every 8 s < lease 10 s
    clock_.Advance(absl::Seconds(8));
    Heartbeat(w1, {job});
    dispatcher_.Tick();
  }
  EXPECT_EQ(State(job), tpdiff::v1::JOB_STATE_RUNNING);

  const uint64_t w2 = Connect(w2_channel, "w2");
  clock_.Advance(absl::Seconds(11));  // w1 goes silent
  Heartbeat(w2, {});
  dispatcher_.Tick();
  ASSERT_TRUE(w1_channel.closed.has_value());
  EXPECT_EQ(w1_channel.closed->code(), absl::StatusCode::kUnavailable);
  ASSERT_THAT(w2_channel.Assigned(), ::testing::ElementsAre(job));
  EXPECT_EQ(w2_channel.LastAssign()->attempt(), 2u);
  EXPECT_THAT(Events(job), ::testing::ElementsAre("queued", "started", "requeued"));
  const JobEvent& requeued = *store_.Next(job, 2)->event;
  EXPECT_EQ(requeued.requeued().attempt(), 2u);
  EXPECT_THAT(requeued.requeued().reason(), HasSubstr("lease expired"));

  // Late events from the first attempt are ignored.
  Send(w1, job, 1, Completed({1}));
  Send(w2, job, 1, Completed({1}));
  EXPECT_EQ(State(job), tpdiff::v1::JOB_STATE_QUEUED);  // requeued, not yet started again
  Send(w2, job, 2, Started());
  Send(w2, job, 2, Completed({1}));
  EXPECT_THAT(Events(job), ::testing::ElementsAre("queued", "started", "requeued", "started",
                                                  "completed"));
  EXPECT_EQ(store_.Get(job)->attempt(), 2u);
}

TEST_F(DispatcherTest, JobTheWorkerNoLongerListsIsRequeued) {
  RecordingChannel channel;
  const uint64_t w = Connect(channel, "w1");
  const std::string job = Submit();
  for (int i = 0; i < 3; ++i) {  // the worker is alive but has lost the job
    clock_.Advance(absl::Seconds(4));
    Heartbeat(w, {});
    dispatcher_.Tick();
  }
  EXPECT_THAT(Events(job), ::testing::ElementsAre("queued", "requeued"));
  EXPECT_THAT(channel.Cancelled(), ::testing::Contains(job));
  EXPECT_EQ(channel.Assigned().size(), 2u);  // the only worker gets it again
}

TEST_F(DispatcherTest, LostStreamRequeuesAtTheFrontAndFailsAfterMaxAttempts) {
  const std::string job = Submit();
  GenerateRequest other = ValidRequest();
  const std::string waiting = Submit(other);
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    RecordingChannel channel;
    const uint64_t w = Connect(channel, "w" + std::to_string(attempt));
    ASSERT_FALSE(channel.Assigned().empty());
    EXPECT_EQ(channel.Assigned()[0], job) << "the re-queued job goes first";
    EXPECT_EQ(channel.LastAssign()->attempt(), attempt);
    Send(w, job, attempt, Started());
    dispatcher_.DisconnectWorker(w, "gone");
  }
  tpdiff::v1::Job failed = *store_.Get(job);
  EXPECT_EQ(failed.state(), tpdiff::v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.error(), HasSubstr("after 3 attempts"));
  EXPECT_THAT(Events(job), ::testing::ElementsAre("queued", "started", "requeued", "started",
                                                  "requeued", "started", "failed"));
  EXPECT_EQ(State(waiting), tpdiff::v1::JOB_STATE_QUEUED);
}

TEST_F(DispatcherTest, WorkerGivingUpAJobRequeuesIt) {
  RecordingChannel w1_channel, w2_channel;
  const uint64_t w1 = Connect(w1_channel, "w1");
  const std::string job = Submit();
  dispatcher_.DrainWorkers();
  Send(w1, job, 1, CancelledByWorker("shutdown"));
  EXPECT_EQ(State(job), tpdiff::v1::JOB_STATE_QUEUED);
  Connect(w2_channel, "w2");
  EXPECT_THAT(w2_channel.Assigned(), ::testing::ElementsAre(job));
}

TEST_F(DispatcherTest, CancelRunningJobForwardsToItsWorkerAndHoldsTheSlotUntilConfirmed) {
  RecordingChannel channel;
  const uint64_t w = Connect(channel, "w1");
  const std::string job = Submit();
  const std::string next = Submit();
  Send(w, job, 1, Started());
  absl::StatusOr<tpdiff::v1::Job> cancelled = dispatcher_.Cancel(job, "client");
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state(), tpdiff::v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(channel.Cancelled(), ::testing::ElementsAre(job));
  EXPECT_EQ(channel.Assigned().size(), 1u);  // the worker still runs it
  Send(w, job, 1, CancelledByWorker("client"));  // confirmation frees the slot
  EXPECT_EQ(channel.Assigned().back(), next);
  EXPECT_THAT(Events(job), ::testing::ElementsAre("queued", "started", "cancelled"));
  // Idempotent.
  EXPECT_EQ(dispatcher_.Cancel(job, "client")->state(), tpdiff::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(dispatcher_.Cancel("job-unknown", "client").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DispatcherTest, HeartbeatWithoutACancelledJobFreesItsSlot) {
  RecordingChannel channel;
  const uint64_t w = Connect(channel, "w1");
  const std::string job = Submit();
  const std::string next = Submit();
  ASSERT_TRUE(dispatcher_.Cancel(job, "client").ok());
  Heartbeat(w, {job});
  EXPECT_EQ(channel.Assigned().size(), 1u);
  Heartbeat(w, {});
  EXPECT_EQ(channel.Assigned().back(), next);
}

TEST_F(DispatcherTest, CancelQueuedJobNeverStarts) {
  const std::string job = Submit();
  ASSERT_TRUE(dispatcher_.Cancel(job, "client").ok());
  RecordingChannel channel;
  Connect(channel, "w1");
  EXPECT_TRUE(channel.Assigned().empty());
  EXPECT_EQ(dispatcher_.QueuedJobs(), 0u);
}

TEST_F(DispatcherTest, DrainedWorkersGetNoJobsAndStoppingRejectsSubmits) {
  RecordingChannel channel;
  Connect(channel, "w1");
  dispatcher_.DrainWorkers();
  EXPECT_TRUE(channel.sent.back().has_drain());
  EXPECT_FALSE(dispatcher_.Ready());
  Submit();
  EXPECT_TRUE(channel.Assigned().empty());
  dispatcher_.StopAdmitting();
  EXPECT_EQ(dispatcher_.Submit(ValidRequest()).status().code(), absl::StatusCode::kUnavailable);
  dispatcher_.CancelAll("shutdown");
  EXPECT_EQ(dispatcher_.QueuedJobs(), 0u);
}

TEST_F(DispatcherTest, BadHelloAndUnknownModels) {
  RecordingChannel channel;
  tpdiff::worker::v1::Hello hello;
  hello.set_worker_id("w1");
  hello.set_slots(0);
  hello.add_models("tiny");
  EXPECT_THAT(dispatcher_.ConnectWorker(hello, &channel).status().message(), HasSubstr("slots"));
  // A worker can announce a model the front has not read from disk.
  hello.set_slots(1);
  hello.clear_models();
  hello.add_models("other");
  *hello.add_model_info() = TinyModel("other");
  ASSERT_TRUE(dispatcher_.ConnectWorker(hello, &channel).ok());
  GenerateRequest request = ValidRequest();
  request.set_model("other");
  Submit(request);
  EXPECT_EQ(channel.Assigned().size(), 1u);
  tpdiff::v1::ListModelsResponse list = dispatcher_.ListModels();
  ASSERT_EQ(list.models_size(), 2);
  EXPECT_EQ(list.models(0).name(), "other");
  EXPECT_EQ(list.models(0).ready_workers(), 1u);
  EXPECT_EQ(list.models(1).ready_workers(), 0u);
}


TEST_F(DispatcherTest, JobsGoToTheLeastBusyFreeWorkerAndABacklogSpreads) {
  RecordingChannel w1_channel, w2_channel;
  Connect(w1_channel, "w1", /*slots=*/2);
  const uint64_t w2 = Connect(w2_channel, "w2", /*slots=*/2);
  const std::string a = Submit();
  const std::string b = Submit();
  EXPECT_THAT(w1_channel.Assigned(), ::testing::ElementsAre(a));
  EXPECT_THAT(w2_channel.Assigned(), ::testing::ElementsAre(b));
  // A worker whose slot frees takes the next queued job itself.
  const std::string c = Submit();
  const std::string d = Submit();
  const std::string queued = Submit();
  EXPECT_THAT(w1_channel.Assigned(), ::testing::ElementsAre(a, c));
  EXPECT_THAT(w2_channel.Assigned(), ::testing::ElementsAre(b, d));
  EXPECT_EQ(dispatcher_.QueuedJobs(), 1u);
  Send(w2, d, 1, Started());
  Send(w2, d, 1, Completed({1}));
  EXPECT_EQ(w2_channel.Assigned().back(), queued);
  EXPECT_EQ(dispatcher_.RunningJobs(), 4u);
}

TEST_F(DispatcherTest, JobOfAModelNoWorkerServesFailsAfterTheUnservableTimeout) {
  // "tiny" is known from disk only: the job waits, since a worker may be starting.
  const std::string job = Submit();
  clock_.Advance(absl::Seconds(59));
  dispatcher_.Tick();
  EXPECT_EQ(State(job), tpdiff::v1::JOB_STATE_QUEUED);
  clock_.Advance(absl::Seconds(2));
  dispatcher_.Tick();
  tpdiff::v1::Job failed = *store_.Get(job);
  EXPECT_EQ(failed.state(), tpdiff::v1::JOB_STATE_FAILED);
  EXPECT_EQ(failed.error(), "model: no connected worker serves model \"tiny\" (waited 61s)");
  EXPECT_EQ(store_.Next(job, 1)->event->failed().code(),
            static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(dispatcher_.QueuedJobs(), 0u);
}

TEST_F(DispatcherTest, UnservableTimeoutCountsFromTheLastWorkerOfTheModelLeaving) {
  RecordingChannel channel;
  const uint64_t w = Connect(channel, "w1");
  const std::string running = Submit();
  const std::string queued = Submit();
  clock_.Advance(absl::Seconds(100));  // queued long, but the model was served
  Heartbeat(w, {running});
  dispatcher_.Tick();
  EXPECT_EQ(State(queued), tpdiff::v1::JOB_STATE_QUEUED);
  dispatcher_.DisconnectWorker(w, "gone");  // `running` is re-queued in front
  clock_.Advance(absl::Seconds(30));
  dispatcher_.Tick();
  EXPECT_EQ(dispatcher_.QueuedJobs(), 2u);
  // A worker of the model arriving in time gets the jobs.
  RecordingChannel late;
  const uint64_t w2 = Connect(late, "w2");
  EXPECT_THAT(late.Assigned(), ::testing::ElementsAre(running));
  dispatcher_.DisconnectWorker(w2, "gone too");
  clock_.Advance(absl::Seconds(60));
  dispatcher_.Tick();
  EXPECT_EQ(dispatcher_.QueuedJobs(), 0u);
  EXPECT_THAT(store_.Get(queued)->error(), HasSubstr("model \"tiny\" (waited 60s)"));
  EXPECT_THAT(store_.Get(running)->error(), HasSubstr("no connected worker serves"));
}

}  // namespace
}  // namespace tpdiff::server

namespace tpdiff::server {
namespace {

class DispatcherTenantTest : public DispatcherTest {};

TEST_F(DispatcherTenantTest, QueuedJobsLimitIsPerTenantAndNamesTheLimit) {
  // The fixture's queue holds 2 jobs per priority; each tenant may queue 1.
  const JobOwner a{"a", /*max_queued_jobs=*/1};
  const JobOwner b{"b", /*max_queued_jobs=*/1};
  ASSERT_TRUE(dispatcher_.Submit(ValidRequest(), absl::InfiniteFuture(), a).ok());
  absl::StatusOr<Submission> second = dispatcher_.Submit(ValidRequest(), absl::InfiniteFuture(), a);
  ASSERT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("max_queued_jobs 1"));
  EXPECT_TRUE(dispatcher_.Submit(ValidRequest(), absl::InfiniteFuture(), b).ok());

  // A job that starts on a worker (a's, the oldest) no longer counts as queued.
  RecordingChannel channel;
  Connect(channel, "w1");
  ASSERT_NE(channel.LastAssign(), nullptr);
  EXPECT_TRUE(dispatcher_.Submit(ValidRequest(), absl::InfiniteFuture(), a).ok());
}

TEST_F(DispatcherTenantTest, RequestIdIsAnIdempotencyKeyPerTenant) {
  GenerateRequest request = ValidRequest();
  request.set_request_id("same");
  absl::StatusOr<Submission> a1 = dispatcher_.Submit(request, absl::InfiniteFuture(), {"a"});
  absl::StatusOr<Submission> a2 = dispatcher_.Submit(request, absl::InfiniteFuture(), {"a"});
  absl::StatusOr<Submission> b1 = dispatcher_.Submit(request, absl::InfiniteFuture(), {"b"});
  ASSERT_TRUE(a1.ok() && a2.ok() && b1.ok());
  EXPECT_TRUE(a2->existing);
  EXPECT_EQ(a1->job.job_id(), a2->job.job_id());
  EXPECT_FALSE(b1->existing);
  EXPECT_NE(a1->job.job_id(), b1->job.job_id());
  EXPECT_EQ(*store_.Owner(b1->job.job_id()), "b");
}

}  // namespace
}  // namespace tpdiff::server
