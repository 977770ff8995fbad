// One conformance suite for the front's state interfaces (JobStore, WorkQueue,
// TenantLimiter), run over the in-memory implementations and the Redis ones against a real
// redis-server (tests/support/redis_server.h; never skipped). Redis-only behaviour (several
// replicas on one Redis, leases of a dead replica, an unreachable server) follows the typed
// suite.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "redis_server.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/job_queue.h"
#include "tpdiff/server/job_store.h"
#include "tpdiff/server/redis_state.h"
#include "tpdiff/server/server_setup.h"
#include "tpdiff/server/tenants.h"

namespace tpdiff::server {
namespace {

using ::testing::HasSubstr;
using tpdiff::v1::Job;
using tpdiff::v1::JobEvent;
using tpdiff::v1::PRIORITY_BATCH;
using tpdiff::v1::PRIORITY_INTERACTIVE;
using tpdiff::v1::PRIORITY_STANDARD;

constexpr size_t kCapacity = 3;
constexpr absl::Duration kAging = absl::Seconds(10);
constexpr absl::Duration kTtl = absl::Minutes(10);
constexpr size_t kBudget = 10000;

// Notified on the first update; counts all of them.
class Watcher : public JobWatcher {
 public:
  void OnJobUpdated() override {
    if (updates.fetch_add(1) == 0) first.Notify();
  }
  std::atomic<int> updates{0};
  absl::Notification first;
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

// One redis-server for the whole binary (each test has its own key prefix), stopped when
// the tests end.
class SharedRedisEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { server.reset(); }
  std::unique_ptr<testing::RedisServer> server;
};
SharedRedisEnvironment* const shared_redis = static_cast<SharedRedisEnvironment*>(
    ::testing::AddGlobalTestEnvironment(new SharedRedisEnvironment));

testing::RedisServer& SharedRedis() {
  if (shared_redis->server == nullptr) {
    absl::StatusOr<std::unique_ptr<testing::RedisServer>> started = testing::RedisServer::Start();
    if (!started.ok()) {
      ADD_FAILURE() << started.status();
      std::abort();  // a missing redis-server fails the suite, loudly
    }
    shared_redis->server = *std::move(started);
  }
  return *shared_redis->server;
}

std::string UniquePrefix() {
  static std::atomic<int> next{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat("t", next.fetch_add(1), ":", info->name(), ":");
}

RedisStateOptions RedisOptions(const std::string& prefix, const std::string& replica) {
  RedisStateOptions options;
  absl::StatusOr<RedisAddress> address = ParseRedisUrl(SharedRedis().url());
  options.address = *address;
  options.key_prefix = prefix;
  options.replica_id = replica;
  options.pool_size = 2;
  options.queue_capacity = kCapacity;
  options.aging_interval = kAging;
  options.job_ttl = kTtl;
  options.job_store_bytes = kBudget;
  return options;
}

struct MemoryBackend {
  static constexpr bool kShared = false;
  FakeClock clock;
  InMemoryJobStore store_impl{clock, kTtl, kBudget};
  PriorityJobQueue queue_impl{kCapacity, kAging};
  InMemoryTenantLimiter limiter_impl;
  JobStore& store() { return store_impl; }
  WorkQueue& queue() { return queue_impl; }
  TenantLimiter& limiter() { return limiter_impl; }
};

struct RedisBackend {
  static constexpr bool kShared = true;
  FakeClock clock;
  RedisState state{RedisOptions(UniquePrefix(), "replica-a"), clock};
  std::unique_ptr<RedisJobStore> store_impl = state.MakeJobStore();
  std::unique_ptr<RedisWorkQueue> queue_impl = state.MakeWorkQueue();
  std::unique_ptr<TenantLimiter> limiter_impl = state.MakeTenantLimiter();
  JobStore& store() { return *store_impl; }
  WorkQueue& queue() { return *queue_impl; }
  TenantLimiter& limiter() { return *limiter_impl; }
};

template <typename Backend>
class StateConformanceTest : public ::testing::Test {
 protected:
  void Create(const std::string& id, const std::string& request_id = "",
              const std::string& tenant = "") {
    Job job;
    job.set_job_id(id);
    job.set_request_id(request_id);
    job.set_attempt(1);
    ASSERT_TRUE(b_.store().Create(job, tenant).ok()) << id;
  }
  QueuedJob Entry(const std::string& id, tpdiff::v1::Priority priority,
                  const std::string& model = "m", const std::string& tenant = "") {
    QueuedJob job{id, priority, model, b_.clock.Now()};
    job.tenant = tenant;
    job.queued_at = b_.clock.Now();
    return job;
  }
  std::string PopId(const std::set<std::string>& models = {"m"}) {
    std::optional<QueuedJob> job = b_.queue().Pop(b_.clock.Now(), models);
    return job ? job->job_id : "";
  }
  Backend b_;
};

using Backends = ::testing::Types<MemoryBackend, RedisBackend>;
class BackendNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kShared ? "Redis" : "Memory";
  }
};
TYPED_TEST_SUITE(StateConformanceTest, Backends, BackendNames);

// ---- JobStore ----

TYPED_TEST(StateConformanceTest, SeqIsGapFreeAndStateFollowsEvents) {
  JobStore& store = this->b_.store();
  this->Create("j1");
  JobEvent started;
  started.mutable_started()->set_worker_id("w");
  started.mutable_started()->set_attempt(1);
  EXPECT_EQ(*store.Append("j1", JobEvent()), 1);
  EXPECT_EQ(*store.Append("j1", started), 2);
  EXPECT_EQ(store.Get("j1")->state(), tpdiff::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(*store.Append("j1", Progress(1)), 3);
  EXPECT_EQ(*store.Append("j1", Chunk(10)), 4);
  EXPECT_EQ(*store.Append("j1", Completed()), 5);
  const Job job = *store.Get("j1");
  EXPECT_EQ(job.state(), tpdiff::v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(job.last_seq(), 5);
  EXPECT_EQ(job.result_bytes(), 10u);
  EXPECT_EQ(job.result_mime(), "video/mp4");
  EXPECT_EQ(store.Append("j1", Progress(2)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Append("nope", Progress(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Get("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Next("nope", 0).status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(StateConformanceTest, ReplayFromAnySeqGivesTheStoredEventsThenFinished) {
  JobStore& store = this->b_.store();
  this->Create("j1");
  ASSERT_TRUE(store.Append("j1", Progress(1)).ok());
  ASSERT_TRUE(store.Append("j1", Chunk(100)).ok());
  EventRead pending = *store.Next("j1", 2);
  EXPECT_EQ(pending.event, nullptr);
  EXPECT_FALSE(pending.finished);
  ASSERT_TRUE(store.Append("j1", Completed()).ok());
  for (int64_t after = 0; after < 3; ++after) {
    EventRead read = *store.Next("j1", after);
    ASSERT_NE(read.event, nullptr);
    EXPECT_EQ(read.event->seq(), after + 1);
    EXPECT_EQ(read.event->job_id(), "j1");
  }
  EXPECT_EQ(store.Next("j1", 1)->event->result_chunk().data(), std::string(100, 'x'));
  EXPECT_EQ(store.Next("j1", -5)->event->seq(), 1);
  EventRead end = *store.Next("j1", 3);
  EXPECT_EQ(end.event, nullptr);
  EXPECT_TRUE(end.finished);
}

TYPED_TEST(StateConformanceTest, RequestIdIsAnIdempotencyKeyPerTenant) {
  JobStore& store = this->b_.store();
  this->Create("j1", "r1", "acme");
  Job again;
  again.set_job_id("j2");
  again.set_request_id("r1");
  absl::Status taken = store.Create(again, "acme");
  EXPECT_EQ(taken.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.message(), HasSubstr("request_id r1"));
  EXPECT_TRUE(store.Create(again, "other").ok());
  EXPECT_EQ(store.FindByRequestId("acme", "r1"), "j1");
  EXPECT_EQ(store.FindByRequestId("other", "r1"), "j2");
  EXPECT_EQ(store.FindByRequestId("acme", "r2"), std::nullopt);
  EXPECT_EQ(*store.Owner("j1"), "acme");
  EXPECT_EQ(store.Create(again, "other").code(), absl::StatusCode::kAlreadyExists);  // job id
  EXPECT_TRUE(CheckAccess(store, "j1", "acme").ok());
  EXPECT_EQ(CheckAccess(store, "j1", "other").code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(StateConformanceTest, DiscardForgetsTheJobAndItsRequestId) {
  JobStore& store = this->b_.store();
  this->Create("j1", "r1");
  ASSERT_TRUE(store.Append("j1", JobEvent()).ok());
  store.Discard("j1");
  EXPECT_EQ(store.Get("j1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.FindByRequestId("", "r1"), std::nullopt);
  EXPECT_EQ(store.job_count(), 0u);
  EXPECT_EQ(store.bytes(), 0u);
  this->Create("j1", "r1");  // both free again
}

TYPED_TEST(StateConformanceTest, WatchersAreWokenByAppendsAndCanLeave) {
  JobStore& store = this->b_.store();
  this->Create("j1");
  auto watcher = std::make_shared<Watcher>();
  EXPECT_EQ(store.Watch("nope", watcher).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store.Watch("j1", watcher).ok());
  ASSERT_TRUE(store.Append("j1", Progress(1)).ok());
  // Redis wakes watchers over pub/sub, on its own thread.
  ASSERT_TRUE(watcher->first.WaitForNotificationWithTimeout(absl::Seconds(10)));
  store.Unwatch("j1", watcher.get());
  const int seen = watcher->updates.load();
  auto second = std::make_shared<Watcher>();
  ASSERT_TRUE(store.Watch("j1", second).ok());
  ASSERT_TRUE(store.Append("j1", Progress(2)).ok());
  ASSERT_TRUE(second->first.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(watcher->updates.load(), seen);  // it left before the second append
}

TYPED_TEST(StateConformanceTest, FinishedJobsExpireAfterTheTtl) {
  JobStore& store = this->b_.store();
  this->Create("done", "r1");
  this->Create("running");
  ASSERT_TRUE(store.Append("done", Completed()).ok());
  ASSERT_TRUE(store.Append("running", Progress(1)).ok());
  this->b_.clock.Advance(kTtl - absl::Seconds(1));
  store.Evict();
  EXPECT_TRUE(store.Get("done").ok());
  this->b_.clock.Advance(absl::Seconds(2));
  store.Evict();
  EXPECT_EQ(store.Get("done").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.FindByRequestId("", "r1"), std::nullopt);
  EXPECT_TRUE(store.Get("running").ok());  // unfinished jobs stay
  EXPECT_EQ(store.job_count(), 1u);
}

TYPED_TEST(StateConformanceTest, ByteBudgetEvictsOldestFinishedFirstSparingWatchedJobs) {
  JobStore& store = this->b_.store();
  auto watcher = std::make_shared<Watcher>();
  for (const char* id : {"a", "b", "c"}) {
    this->Create(id);
    if (std::string(id) == "a") ASSERT_TRUE(store.Watch("a", watcher).ok());
    ASSERT_TRUE(store.Append(id, Chunk(4000)).ok());
    ASSERT_TRUE(store.Append(id, Completed()).ok());
    this->b_.clock.Advance(absl::Seconds(1));
  }
  store.Evict();  // the in-memory store evicts on append already
  EXPECT_TRUE(store.Get("a").ok());  // oldest but watched
  EXPECT_EQ(store.Get("b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store.Get("c").ok());
  EXPECT_LE(store.bytes(), kBudget);
  store.Unwatch("a", watcher.get());
}

// ---- WorkQueue ----

TYPED_TEST(StateConformanceTest, HigherPriorityFirstFifoWithin) {
  WorkQueue& queue = this->b_.queue();
  ASSERT_TRUE(queue.Push(this->Entry("b1", PRIORITY_BATCH)).ok());
  ASSERT_TRUE(queue.Push(this->Entry("s1", PRIORITY_STANDARD)).ok());
  this->b_.clock.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(queue.Push(this->Entry("s2", PRIORITY_STANDARD)).ok());
  ASSERT_TRUE(queue.Push(this->Entry("i1", PRIORITY_INTERACTIVE)).ok());
  EXPECT_EQ(queue.TotalSize(), 4u);
  EXPECT_EQ(queue.Size(PRIORITY_STANDARD), 2u);
  EXPECT_EQ(this->PopId(), "i1");
  EXPECT_EQ(this->PopId(), "s1");
  EXPECT_EQ(this->PopId(), "s2");
  EXPECT_EQ(this->PopId(), "b1");
  EXPECT_EQ(this->PopId(), "");
  EXPECT_EQ(queue.TotalSize(), 0u);
}

TYPED_TEST(StateConformanceTest, AgingLetsOldBatchJobsOvertakeNewInteractiveOnes) {
  WorkQueue& queue = this->b_.queue();
  ASSERT_TRUE(queue.Push(this->Entry("old-batch", PRIORITY_BATCH)).ok());
  this->b_.clock.Advance(2 * kAging);
  ASSERT_TRUE(queue.Push(this->Entry("new-interactive", PRIORITY_INTERACTIVE)).ok());
  EXPECT_EQ(this->PopId(), "old-batch");
  EXPECT_EQ(this->PopId(), "new-interactive");
}

TYPED_TEST(StateConformanceTest, CapacityPerPriorityAndTenantLimitNameTheirLimits) {
  WorkQueue& queue = this->b_.queue();
  for (const char* id : {"s1", "s2", "s3"}) {
    ASSERT_TRUE(queue.Push(this->Entry(id, PRIORITY_STANDARD)).ok());
  }
  absl::Status full = queue.Push(this->Entry("s4", PRIORITY_STANDARD));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full.message(), "queue for priority PRIORITY_STANDARD is full (3 jobs)");
  EXPECT_TRUE(queue.Full(PRIORITY_STANDARD));
  EXPECT_FALSE(queue.Full(PRIORITY_BATCH));
  queue.PushFront(this->Entry("r1", PRIORITY_STANDARD));  // re-queued: admitted already
  EXPECT_EQ(queue.Size(PRIORITY_STANDARD), 4u);
  EXPECT_EQ(this->PopId(), "r1");

  ASSERT_TRUE(queue.Push(this->Entry("t1", PRIORITY_BATCH, "m", "acme"), 2).ok());
  ASSERT_TRUE(queue.Push(this->Entry("t2", PRIORITY_BATCH, "m", "acme"), 2).ok());
  absl::Status limited = queue.Push(this->Entry("t3", PRIORITY_BATCH, "m", "acme"), 2);
  EXPECT_EQ(limited.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(limited.message(), HasSubstr("tenant \"acme\" already has max_queued_jobs 2"));
  EXPECT_TRUE(queue.Push(this->Entry("o1", PRIORITY_BATCH, "m", "other"), 2).ok());
  EXPECT_TRUE(queue.Remove("t1"));
  EXPECT_TRUE(queue.Push(this->Entry("t3", PRIORITY_INTERACTIVE, "m", "acme"), 2).ok());
}

TYPED_TEST(StateConformanceTest, PopTakesOnlyModelsTheWorkerServes) {
  WorkQueue& queue = this->b_.queue();
  ASSERT_TRUE(queue.Push(this->Entry("x1", PRIORITY_INTERACTIVE, "x")).ok());
  ASSERT_TRUE(queue.Push(this->Entry("m1", PRIORITY_STANDARD, "m")).ok());
  EXPECT_EQ(this->PopId({"m"}), "m1");
  EXPECT_EQ(this->PopId({"m"}), "");
  EXPECT_EQ(queue.Models(), std::vector<std::string>{"x"});
  EXPECT_EQ(this->PopId({"m", "x"}), "x1");
  EXPECT_TRUE(queue.Models().empty());
}

TYPED_TEST(StateConformanceTest, RemoveExpireTakeModelAndTakeAll) {
  WorkQueue& queue = this->b_.queue();
  QueuedJob soon = this->Entry("soon", PRIORITY_STANDARD);
  soon.deadline = this->b_.clock.Now() + absl::Seconds(5);
  soon.call_deadline = soon.deadline;
  soon.tenant = "acme";
  ASSERT_TRUE(queue.Push(soon).ok());
  ASSERT_TRUE(queue.Push(this->Entry("later", PRIORITY_STANDARD)).ok());
  ASSERT_TRUE(queue.Push(this->Entry("x1", PRIORITY_BATCH, "x")).ok());
  EXPECT_FALSE(queue.Remove("nope"));
  EXPECT_TRUE(queue.TakeExpired(this->b_.clock.Now()).empty());
  this->b_.clock.Advance(absl::Seconds(5));
  std::vector<QueuedJob> expired = queue.TakeExpired(this->b_.clock.Now());
  ASSERT_EQ(expired.size(), 1u);
  // Every field survives the round trip.
  EXPECT_EQ(expired[0].job_id, "soon");
  EXPECT_EQ(expired[0].priority, PRIORITY_STANDARD);
  EXPECT_EQ(expired[0].model, "m");
  EXPECT_EQ(expired[0].tenant, "acme");
  EXPECT_EQ(expired[0].deadline, soon.deadline);
  EXPECT_EQ(expired[0].call_deadline, soon.call_deadline);
  EXPECT_EQ(expired[0].enqueued_at, soon.enqueued_at);
  EXPECT_EQ(expired[0].queued_at, soon.queued_at);
  this->b_.clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(queue.Push(this->Entry("x2", PRIORITY_STANDARD, "x")).ok());
  std::vector<QueuedJob> taken = queue.TakeModel("x", this->b_.clock.Now() - absl::Seconds(1));
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].job_id, "x1");
  EXPECT_TRUE(queue.Remove("later"));
  EXPECT_EQ(queue.TakeAll().size(), 1u);  // x2
  EXPECT_EQ(queue.TotalSize(), 0u);
}

TYPED_TEST(StateConformanceTest, AheadOfANewJobIsItsPositionOnceQueued) {
  WorkQueue& queue = this->b_.queue();
  ASSERT_TRUE(queue.Push(this->Entry("b-old", PRIORITY_BATCH)).ok());
  this->b_.clock.Advance(kAging);  // one level up: competes with STANDARD now
  ASSERT_TRUE(queue.Push(this->Entry("s1", PRIORITY_STANDARD)).ok());
  ASSERT_TRUE(queue.Push(this->Entry("i1", PRIORITY_INTERACTIVE)).ok());
  ASSERT_TRUE(queue.Push(this->Entry("b-new", PRIORITY_BATCH)).ok());
  const absl::Time now = this->b_.clock.Now();
  EXPECT_EQ(queue.Ahead(PRIORITY_INTERACTIVE, now), 1u);  // i1
  EXPECT_EQ(queue.Ahead(PRIORITY_STANDARD, now), 3u);     // i1, b-old, s1
  EXPECT_EQ(queue.Ahead(PRIORITY_BATCH, now), 4u);
  ASSERT_TRUE(queue.Push(this->Entry("s2", PRIORITY_STANDARD)).ok());
  EXPECT_EQ(this->PopId(), "i1");
  EXPECT_EQ(this->PopId(), "b-old");
  EXPECT_EQ(this->PopId(), "s1");
  EXPECT_EQ(this->PopId(), "s2");  // 3 went first, as Ahead said
}

// ---- TenantLimiter ----

TYPED_TEST(StateConformanceTest, TokenBucketAllowsTheBurstThenTheRate) {
  TenantLimiter& limiter = this->b_.limiter();
  const absl::Time now = this->b_.clock.Now();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(*limiter.TakeToken("acme", 1, 3, now)) << i;
  EXPECT_FALSE(*limiter.TakeToken("acme", 1, 3, now));
  EXPECT_TRUE(*limiter.TakeToken("other", 1, 3, now));  // per tenant
  this->b_.clock.Advance(absl::Milliseconds(1500));
  EXPECT_TRUE(*limiter.TakeToken("acme", 1, 3, this->b_.clock.Now()));
  EXPECT_FALSE(*limiter.TakeToken("acme", 1, 3, this->b_.clock.Now()));
  this->b_.clock.Advance(absl::Hours(1));  // refills to the burst, no further
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(*limiter.TakeToken("acme", 1, 3, this->b_.clock.Now()));
  EXPECT_FALSE(*limiter.TakeToken("acme", 1, 3, this->b_.clock.Now()));
}

TYPED_TEST(StateConformanceTest, StreamsAreBoundedAndReleased) {
  TenantLimiter& limiter = this->b_.limiter();
  EXPECT_TRUE(*limiter.AcquireStream("acme", 2));
  EXPECT_TRUE(*limiter.AcquireStream("acme", 2));
  EXPECT_FALSE(*limiter.AcquireStream("acme", 2));
  EXPECT_EQ(limiter.OpenStreams("acme"), 2u);
  limiter.ReleaseStream("acme");
  EXPECT_EQ(limiter.OpenStreams("acme"), 1u);
  EXPECT_TRUE(*limiter.AcquireStream("acme", 2));
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(*limiter.AcquireStream("free", 0));  // no limit
}

// ---- Redis only: several replicas on one Redis ----

class RedisReplicasTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  const std::string prefix_ = UniquePrefix();
  RedisState a_{RedisOptions(prefix_, "replica-a"), clock_};
  RedisState b_{RedisOptions(prefix_, "replica-b"), clock_};
};

TEST_F(RedisReplicasTest, AJobQueuedOnOneReplicaIsPoppedOnceByAnother) {
  auto queue_a = a_.MakeWorkQueue();
  auto queue_b = b_.MakeWorkQueue();
  QueuedJob job{"j1", PRIORITY_STANDARD, "m", clock_.Now()};
  ASSERT_TRUE(queue_a->Push(job).ok());
  EXPECT_EQ(queue_b->TotalSize(), 1u);
  std::optional<QueuedJob> popped = queue_b->Pop(clock_.Now(), {"m"});
  ASSERT_TRUE(popped.has_value());
  EXPECT_EQ(popped->job_id, "j1");
  EXPECT_FALSE(queue_a->Pop(clock_.Now(), {"m"}).has_value());
  EXPECT_FALSE(queue_a->Remove("j1"));  // running, not queued
}

TEST_F(RedisReplicasTest, AnotherReplicaIsToldOfQueuedJobsAndCancellations) {
  class Listener : public WorkQueueListener {
   public:
    void OnJobQueued(const std::string& model) override {
      if (model == "m" && !queued.HasBeenNotified()) queued.Notify();
    }
    void OnCancelRequested(const std::string& job_id, const std::string& reason) override {
      if (job_id == "j1" && reason == "cancelled (client)" && !cancelled.HasBeenNotified()) {
        cancelled.Notify();
      }
    }
    absl::Notification queued, cancelled;
  } listener;
  auto queue_a = a_.MakeWorkQueue();
  auto queue_b = b_.MakeWorkQueue();
  queue_b->SetListener(&listener);
  // The subscriber connects on its own thread: push until it has heard one.
  const absl::Time until = absl::Now() + absl::Seconds(10);
  for (int i = 0; !listener.queued.WaitForNotificationWithTimeout(absl::Milliseconds(50)); ++i) {
    ASSERT_LT(absl::Now(), until);
    ASSERT_TRUE(queue_a->Push(QueuedJob{absl::StrCat("q", i), PRIORITY_BATCH, "m", clock_.Now()}).ok());
  }
  queue_a->RequestCancel("j1", "cancelled (client)");
  EXPECT_TRUE(listener.cancelled.WaitForNotificationWithTimeout(absl::Seconds(10)));
  queue_b->SetListener(nullptr);
}

TEST_F(RedisReplicasTest, LeasesOfAReplicaThatStopsRenewingAreAdoptedOnce) {
  auto queue_a = a_.MakeWorkQueue();
  auto queue_b = b_.MakeWorkQueue();
  queue_a->Heartbeat(clock_.Now(), {"m"});
  queue_b->Heartbeat(clock_.Now(), {"m"});
  ASSERT_TRUE(queue_a->Push(QueuedJob{"j1", PRIORITY_STANDARD, "m", clock_.Now()}).ok());
  ASSERT_TRUE(queue_a->Push(QueuedJob{"j2", PRIORITY_STANDARD, "m", clock_.Now()}).ok());
  ASSERT_EQ(queue_b->Pop(clock_.Now(), {"m"})->job_id, "j1");
  ASSERT_EQ(queue_a->Pop(clock_.Now(), {"m"})->job_id, "j2");
  EXPECT_TRUE(queue_a->TakeOrphans(clock_.Now()).empty());  // b is alive
  EXPECT_TRUE(queue_a->ServedElsewhere("m"));
  // b dies: its liveness key goes (as its TTL would make it go).
  ASSERT_TRUE(a_.pool().Command({"DEL", prefix_ + "alive:replica-b"}).ok());
  std::vector<QueuedJob> orphans = queue_a->TakeOrphans(clock_.Now());
  ASSERT_EQ(orphans.size(), 1u);
  EXPECT_EQ(orphans[0].job_id, "j1");
  EXPECT_TRUE(queue_a->TakeOrphans(clock_.Now()).empty());  // adopted once
  queue_a->PushFront(orphans[0]);  // re-queued: popped again
  EXPECT_EQ(queue_a->Pop(clock_.Now(), {"m"})->job_id, "j1");
  queue_a->Finished("j1");
  queue_a->Finished("j2");
  ASSERT_TRUE(a_.pool().Command({"DEL", prefix_ + "alive:replica-a"}).ok());
  EXPECT_TRUE(queue_b->TakeOrphans(clock_.Now()).empty());  // nothing left running
}

TEST_F(RedisReplicasTest, ABurstSplitAcrossReplicasAdmitsExactlyTheBurst) {
  auto limiter_a = a_.MakeTenantLimiter();
  auto limiter_b = b_.MakeTenantLimiter();
  int admitted = 0;
  for (int i = 0; i < 40; ++i) {
    TenantLimiter& limiter = i % 2 == 0 ? *limiter_a : *limiter_b;
    if (*limiter.TakeToken("acme", 0.001, 20, clock_.Now())) ++admitted;
  }
  EXPECT_EQ(admitted, 20);
}

TEST_F(RedisReplicasTest, StreamsOfADeadReplicaStopCounting) {
  auto queue_a = a_.MakeWorkQueue();
  auto queue_b = b_.MakeWorkQueue();
  queue_a->Heartbeat(clock_.Now(), {});
  queue_b->Heartbeat(clock_.Now(), {});
  auto limiter_a = a_.MakeTenantLimiter();
  auto limiter_b = b_.MakeTenantLimiter();
  EXPECT_TRUE(*limiter_a->AcquireStream("acme", 2));
  EXPECT_TRUE(*limiter_b->AcquireStream("acme", 2));
  EXPECT_FALSE(*limiter_a->AcquireStream("acme", 2));
  ASSERT_TRUE(a_.pool().Command({"DEL", prefix_ + "alive:replica-b"}).ok());
  EXPECT_EQ(limiter_a->OpenStreams("acme"), 1u);
  EXPECT_TRUE(*limiter_a->AcquireStream("acme", 2));
}

TEST_F(RedisReplicasTest, AppendsFromTwoReplicasNeverShareASeq) {
  auto store_a = a_.MakeJobStore();
  auto store_b = b_.MakeJobStore();
  Job job;
  job.set_job_id("j1");
  ASSERT_TRUE(store_a->Create(job, "").ok());
  std::vector<std::thread> threads;
  for (JobStore* store : {static_cast<JobStore*>(store_a.get()), static_cast<JobStore*>(store_b.get())}) {
    threads.emplace_back([store] {
      for (int i = 0; i < 25; ++i) ASSERT_TRUE(store->Append("j1", Progress(i)).ok());
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(store_b->Get("j1")->last_seq(), 50);
  for (int64_t seq = 1; seq <= 50; ++seq) {
    EventRead a = *store_a->Next("j1", seq - 1);
    EventRead b = *store_b->Next("j1", seq - 1);
    ASSERT_NE(a.event, nullptr);
    EXPECT_EQ(a.event->seq(), seq);
    EXPECT_EQ(a.event->SerializeAsString(), b.event->SerializeAsString());  // same bytes
  }
}

// ---- Redis only: an unreachable server ----

TEST(RedisUnreachableTest, EveryCallNamesTheServerAndItRecoversByItself) {
  absl::StatusOr<std::unique_ptr<testing::RedisServer>> redis = testing::RedisServer::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  FakeClock clock;
  RedisStateOptions options = RedisOptions("u:", "replica-a");
  options.address = *ParseRedisUrl((*redis)->url());
  RedisState state(options, clock);
  auto store = state.MakeJobStore();
  auto queue = state.MakeWorkQueue();
  ASSERT_TRUE(state.Health().ok());
  (*redis)->Kill();
  Job job;
  job.set_job_id("j1");
  absl::Status created = store->Create(job, "");
  EXPECT_EQ(created.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(created.message(),
              HasSubstr(absl::StrCat("state: redis at ", (*redis)->socket_path(), " unreachable: ")));
  EXPECT_EQ(queue->Push(QueuedJob{"j1", PRIORITY_STANDARD, "m", clock.Now()}).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(queue->Health().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE((*redis)->Restart().ok());
  const absl::Time until = absl::Now() + absl::Seconds(10);  // the backoff is at most 2 s
  while (!state.Health().ok()) {
    ASSERT_LT(absl::Now(), until) << state.Health();
    absl::SleepFor(absl::Milliseconds(50));  // waiting for a real server's reconnect
  }
  EXPECT_TRUE(store->Create(job, "").ok());
}

TEST(RedisUnreachableTest, AMissingOrWrongPasswordIsUnavailableNamingTheServer) {
  ::tpdiff::testing::RedisServerOptions options;
  options.password = "s3cret";
  absl::StatusOr<std::unique_ptr<::tpdiff::testing::RedisServer>> redis =
      ::tpdiff::testing::RedisServer::Start(options);
  ASSERT_TRUE(redis.ok()) << redis.status();
  FakeClock clock;
  for (const char* password : {"", "wrong", "s3cret"}) {
    RedisStateOptions state_options = RedisOptions("p:", "replica-a");
    state_options.address = *ParseRedisUrl((*redis)->url());
    state_options.address.password = password;
    RedisState state(state_options, clock);
    auto queue = state.MakeWorkQueue();
    absl::Status pushed = queue->Push(QueuedJob{"j1", PRIORITY_STANDARD, "m", clock.Now()});
    if (std::string(password) == "s3cret") {
      EXPECT_TRUE(pushed.ok()) << pushed;
      continue;
    }
    EXPECT_EQ(pushed.code(), absl::StatusCode::kUnavailable) << password << ": " << pushed;
    EXPECT_THAT(pushed.message(), HasSubstr("state: redis at " + (*redis)->socket_path()));
    EXPECT_THAT(pushed.message(), ::testing::Not(HasSubstr("s3cret")));
    EXPECT_FALSE(state.Health().ok());
  }
}

// ---- --state and its password ----

TEST(ConfigureStateTest, ParsesTheTwoFormsAndRejectsTheRestNamingTheFlag) {
  absl::StatusOr<RedisAddress> tcp = ParseRedisUrl("redis://redis.default.svc:6380/2");
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_EQ(tcp->host, "redis.default.svc");
  EXPECT_EQ(tcp->port, 6380);
  EXPECT_EQ(tcp->db, 2);
  EXPECT_EQ(tcp->Describe(), "redis.default.svc:6380");
  absl::StatusOr<RedisAddress> unix_socket = ParseRedisUrl("unix:///run/redis.sock?db=3");
  ASSERT_TRUE(unix_socket.ok()) << unix_socket.status();
  EXPECT_EQ(unix_socket->unix_path, "/run/redis.sock");
  EXPECT_EQ(unix_socket->db, 3);
  for (const char* bad : {"redis://host", "redis://host:0", "redis://:6379", "redis://h:1/x",
                          "redis://user:pw@h:1", "http://h:1", "unix://relative.sock",
                          "unix:///s.sock?x=1"}) {
    absl::StatusOr<RedisAddress> parsed = ParseRedisUrl(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("--state"));
    EXPECT_THAT(parsed.status().message(), ::testing::Not(HasSubstr("pw")));
  }

  FrontServerOptions options;
  ASSERT_TRUE(ConfigureState("memory", "", options).ok());
  EXPECT_FALSE(options.redis.has_value());
  EXPECT_EQ(ConfigureState("memory", "/some/file", options).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(setenv(kRedisPasswordEnv, "from-env", 1), 0);
  ASSERT_TRUE(ConfigureState("redis://h:6379", "", options).ok());
  EXPECT_EQ(options.redis->password, "from-env");
  unsetenv(kRedisPasswordEnv);
  absl::Status missing = ConfigureState("redis://h:6379", "/nonexistent/pw", options);
  EXPECT_THAT(missing.message(), HasSubstr("--redis-password-file"));
}

}  // namespace
}  // namespace tpdiff::server
