// Two Dispatchers sharing one real redis-server, as two front replicas in one process: a job
// queued on one runs on a worker of the other, a cancellation crosses over, and the jobs of a
// front that stops renewing its liveness are re-queued by the other. Pub/sub arrives on the
// RedisState's own thread, so the tests wait (bounded) for what it causes.

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "redis_server.h"
#include "test_model.h"
#include "tpdiff/server/dispatcher.h"
#include "tpdiff/server/redis_state.h"

namespace tpdiff::server {
namespace {

using tpdiff::v1::JobEvent;
using tpdiff::worker::v1::DispatchMessage;
using tpdiff::worker::v1::WorkerMessage;

constexpr absl::Duration kWait = absl::Seconds(10);

// A worker's stream, written by the Dispatcher from any thread.
class SharedChannel : public WorkerChannel {
 public:
  void Send(DispatchMessage message) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(std::move(message));
  }
  void Close(const absl::Status&) override {}
  // Waits for the first message of a kind (assign / cancel) about `job_id` ("" = any).
  std::optional<DispatchMessage> Await(DispatchMessage::KindCase kind, const std::string& job_id,
                                       const std::function<void()>& poke) {
    const absl::Time until = absl::Now() + kWait;
    while (absl::Now() < until) {
      {
        absl::MutexLock lock(&mu_);
        for (const DispatchMessage& m : messages_) {
          const std::string& id = m.has_assign() ? m.assign().job_id() : m.cancel().job_id();
          if (m.kind_case() == kind && (job_id.empty() || id == job_id)) return m;
        }
      }
      poke();  // a tick, as the ticker thread would
      absl::SleepFor(absl::Milliseconds(20));
    }
    return std::nullopt;
  }

 private:
  absl::Mutex mu_;
  std::vector<DispatchMessage> messages_ ABSL_GUARDED_BY(mu_);
};

// One front: its own replica id, store, queue, metrics and models over the shared Redis.
struct Front {
  Front(const std::string& url, const std::string& prefix, const std::string& replica,
        const Clock& clock)
      : state(Options(url, prefix, replica), clock),
        store(state.MakeJobStore()),
        dispatcher(DispatcherOptions(), clock, models, *store, metrics, state.MakeWorkQueue()) {}

  static RedisStateOptions Options(const std::string& url, const std::string& prefix,
                                   const std::string& replica) {
    RedisStateOptions options;
    options.address = *ParseRedisUrl(url);
    options.key_prefix = prefix;
    options.replica_id = replica;
    options.pool_size = 2;
    return options;
  }

  uint64_t Connect(SharedChannel& channel, const std::string& worker_id) {
    tpdiff::worker::v1::Hello hello;
    hello.set_worker_id(worker_id);
    hello.add_models("tiny");
    hello.set_slots(1);
    absl::StatusOr<uint64_t> connection = dispatcher.ConnectWorker(hello, &channel);
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.value_or(0);
  }

  void Send(uint64_t connection, const std::string& job_id, uint32_t attempt, JobEvent event) {
    WorkerMessage message;
    message.mutable_event()->set_job_id(job_id);
    message.mutable_event()->set_attempt(attempt);
    *message.mutable_event()->mutable_event() = std::move(event);
    dispatcher.OnWorkerMessage(connection, message);
  }

  prometheus::Registry registry;
  ServerMetrics metrics{registry};
  ModelRegistry models{""};
  RedisState state;
  std::unique_ptr<RedisJobStore> store;
  Dispatcher dispatcher;
};

class DispatcherReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<::tpdiff::testing::RedisServer>> redis = ::tpdiff::testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    a_ = std::make_unique<Front>(redis_->url(), "r:", "front-a", clock_);
    b_ = std::make_unique<Front>(redis_->url(), "r:", "front-b", clock_);
    for (Front* front : {a_.get(), b_.get()}) front->models.AddFromDisk(testing::TinySpec());
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
  }

  std::string SubmitOn(Front& front) {
    absl::StatusOr<Submission> submission = front.dispatcher.Submit(testing::ValidRequest());
    EXPECT_TRUE(submission.ok()) << submission.status();
    return submission.ok() ? submission->job.job_id() : "";
  }

  FakeClock clock_;
  std::unique_ptr<::tpdiff::testing::RedisServer> redis_;
  std::unique_ptr<Front> a_, b_;
};

JobEvent Started() {
  JobEvent event;
  event.mutable_started();
  return event;
}

JobEvent Progress() {
  JobEvent event;
  event.mutable_progress()->set_step(1);
  return event;
}

TEST_F(DispatcherReplicasTest, AJobQueuedOnOneFrontRunsOnAWorkerOfTheOther) {
  SharedChannel worker;
  const uint64_t connection = b_->Connect(worker, "w1");
  const std::string job = SubmitOn(*a_);  // front a has no worker
  std::optional<DispatchMessage> assign =
      worker.Await(DispatchMessage::kAssign, job, [&] { b_->dispatcher.Tick(); });
  ASSERT_TRUE(assign.has_value()) << "front b never assigned the job front a queued";
  EXPECT_EQ(assign->assign().request().prompt(), testing::ValidRequest().prompt());
  b_->Send(connection, job, 1, Started());
  JobEvent completed;
  completed.mutable_completed();
  b_->Send(connection, job, 1, completed);
  EXPECT_EQ(a_->store->Get(job)->state(), tpdiff::v1::JOB_STATE_COMPLETED);  // seen by a
  EXPECT_EQ(a_->store->Get(job)->last_seq(), 3);  // queued, started, completed
}

TEST_F(DispatcherReplicasTest, ACancelOnOneFrontStopsTheJobOnTheWorkerOfTheOther) {
  SharedChannel worker;
  const uint64_t connection = b_->Connect(worker, "w1");
  const std::string job = SubmitOn(*a_);
  ASSERT_TRUE(worker.Await(DispatchMessage::kAssign, job, [&] { b_->dispatcher.Tick(); }));
  b_->Send(connection, job, 1, Started());
  absl::StatusOr<tpdiff::v1::Job> cancelled = a_->dispatcher.Cancel(job, "client");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), tpdiff::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(worker.Await(DispatchMessage::kCancel, job, [] {}))
      << "front b never told its worker";
  // A step the worker finished meanwhile is not added after the end.
  b_->Send(connection, job, 1, Progress());
  EXPECT_EQ(a_->store->Get(job)->last_seq(), 3);  // queued, started, cancelled
}

TEST_F(DispatcherReplicasTest, AnEventAfterACancelStopsTheWorkerWhenTheMessageIsLost) {
  SharedChannel worker;
  const uint64_t connection = b_->Connect(worker, "w1");
  const std::string job = SubmitOn(*a_);
  ASSERT_TRUE(worker.Await(DispatchMessage::kAssign, job, [&] { b_->dispatcher.Tick(); }));
  // The job's log ends without front b hearing of it (as if the pub/sub message were lost).
  ASSERT_TRUE(a_->store->Append(job, JobEventLog::Cancelled("client")).ok());
  b_->Send(connection, job, 1, Progress());  // the worker's next step
  EXPECT_TRUE(worker.Await(DispatchMessage::kCancel, job, [] {}));
}

TEST_F(DispatcherReplicasTest, TheJobsOfAFrontThatStopsRenewingItsLeaseAreRequeued) {
  SharedChannel worker_b, worker_a;
  const uint64_t connection = b_->Connect(worker_b, "w1");
  b_->dispatcher.Tick();  // front b is alive
  const std::string job = SubmitOn(*b_);
  ASSERT_TRUE(worker_b.Await(DispatchMessage::kAssign, job, [] {}));
  b_->Send(connection, job, 1, Started());
  // Front b dies: it stops ticking, and its liveness key expires.
  ASSERT_TRUE(a_->state.pool().Command({"DEL", "r:alive:front-b"}).ok());
  a_->Connect(worker_a, "w2");
  std::optional<DispatchMessage> again =
      worker_a.Await(DispatchMessage::kAssign, job, [&] { a_->dispatcher.Tick(); });
  ASSERT_TRUE(again.has_value()) << "front a never re-queued front b's job";
  EXPECT_EQ(again->assign().attempt(), 2u);
  const tpdiff::v1::Job stored = *a_->store->Get(job);
  EXPECT_EQ(stored.attempt(), 2u);
  EXPECT_EQ(a_->store->Next(job, 2)->event->requeued().reason(),
            "the front running the job stopped renewing its lease");
}

}  // namespace
}  // namespace tpdiff::server
