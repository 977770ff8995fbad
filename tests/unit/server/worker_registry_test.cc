#include "tpdiff/server/worker_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tpdiff/server/clock.h"

namespace tpdiff::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class NullChannel : public WorkerChannel {
 public:
  void Send(tpdiff::worker::v1::DispatchMessage) override {}
  void Close(const absl::Status&) override {}
};

class WorkerRegistryTest : public ::testing::Test {
 protected:
  uint64_t Add(const std::string& id, std::set<std::string> models, uint32_t slots) {
    return registry_.Add(id, std::move(models), slots, &channel_, clock_.Now());
  }
  FakeClock clock_;
  NullChannel channel_;
  WorkerRegistry registry_;
};

TEST_F(WorkerRegistryTest, FreeWorkerIsTheLeastBusyServingOneOfTheModel) {
  EXPECT_FALSE(registry_.FreeWorkerFor("a").has_value());
  const uint64_t w1 = Add("w1", {"a"}, 2);
  const uint64_t w2 = Add("w2", {"a", "b"}, 1);
  EXPECT_EQ(registry_.FreeWorkerFor("a"), w1);  // both idle: the oldest connection
  EXPECT_EQ(registry_.FreeWorkerFor("b"), w2);
  registry_.HoldSlot(w1, "j1", 1);
  EXPECT_EQ(registry_.FreeWorkerFor("a"), w2);  // w1 holds a job, w2 none
  registry_.HoldSlot(w2, "j2", 1);
  EXPECT_EQ(registry_.FreeWorkerFor("a"), w1);  // w2 is full
  EXPECT_FALSE(registry_.FreeWorkerFor("b").has_value());
  EXPECT_EQ(registry_.Capacity("a").slots, 3u);
  EXPECT_EQ(registry_.Capacity("a").busy, 2u);
  EXPECT_EQ(registry_.Capacity("b").busy, 1u);

  EXPECT_FALSE(registry_.ReleaseSlot(w2, "j2", /*attempt=*/2));  // held for attempt 1
  EXPECT_TRUE(registry_.ReleaseSlot(w2, "j2", 1));
  EXPECT_FALSE(registry_.ReleaseSlot(w2, "j2"));
  EXPECT_EQ(registry_.FreeWorkerFor("b"), w2);
  EXPECT_EQ(registry_.Capacity("a").busy, 1u);
}

TEST_F(WorkerRegistryTest, DrainingAndRemovedWorkersServeNothingAndCountsFollow) {
  const uint64_t w1 = Add("w1", {"a"}, 1);
  const uint64_t w2 = Add("w2", {"a"}, 1);
  EXPECT_EQ(registry_.serving(), 2u);
  EXPECT_EQ(registry_.Capacity("a").workers, 2u);
  EXPECT_TRUE(registry_.SetDraining(w1, clock_.Now()));
  EXPECT_FALSE(registry_.SetDraining(w1, clock_.Now()));
  EXPECT_EQ(registry_.serving(), 1u);
  EXPECT_EQ(registry_.draining(), 1u);
  EXPECT_FALSE(registry_.HasFreeSlot(w1));
  EXPECT_EQ(registry_.FreeWorkerFor("a"), w2);

  EXPECT_EQ(registry_.Capacity("a").unserved_since, absl::InfinitePast());
  clock_.Advance(absl::Seconds(5));
  const absl::Time left = clock_.Now();
  ASSERT_TRUE(registry_.Remove(w2, left).has_value());
  EXPECT_FALSE(registry_.Remove(w2, left).has_value());
  EXPECT_EQ(registry_.serving(), 0u);
  EXPECT_EQ(registry_.Capacity("a").workers, 0u);
  EXPECT_EQ(registry_.Capacity("a").unserved_since, left);
  EXPECT_FALSE(registry_.FreeWorkerFor("a").has_value());
  registry_.Remove(w1, left);
  EXPECT_EQ(registry_.draining(), 0u);
}

TEST_F(WorkerRegistryTest, ReconnectedWorkerIdFindsTheNewConnection) {
  const uint64_t first = Add("w1", {"a"}, 1);
  EXPECT_EQ(registry_.FindByWorkerId("w1"), first);
  const uint64_t second = Add("w1", {"a"}, 1);
  EXPECT_NE(first, second);
  registry_.Remove(first, clock_.Now());  // the old connection's removal keeps the new one
  EXPECT_EQ(registry_.FindByWorkerId("w1"), second);
  EXPECT_FALSE(registry_.FindByWorkerId("w2").has_value());
}

TEST_F(WorkerRegistryTest, SilentWorkersAndUnconfirmedLeasesOldestFirst) {
  const uint64_t w1 = Add("w1", {"a"}, 2);
  const uint64_t w2 = Add("w2", {"a"}, 1);
  registry_.Lease("j1", w1, clock_.Now());
  registry_.Lease("j2", w1, clock_.Now());
  clock_.Advance(absl::Seconds(6));
  registry_.Touch(w2, clock_.Now());
  registry_.Confirm("j2", clock_.Now());
  EXPECT_THAT(registry_.SilentWorkers(clock_.Now(), absl::Seconds(10)), IsEmpty());
  clock_.Advance(absl::Seconds(5));  // w1 and j1 silent for 11 s; w2 and j2 for 5 s
  EXPECT_THAT(registry_.SilentWorkers(clock_.Now(), absl::Seconds(10)), ElementsAre(w1));
  auto unconfirmed = registry_.UnconfirmedLeases(clock_.Now(), absl::Seconds(10));
  ASSERT_EQ(unconfirmed.size(), 1u);
  EXPECT_EQ(unconfirmed[0].first, "j1");
  EXPECT_EQ(registry_.leases(), 2u);
  registry_.EndLease("j1");
  EXPECT_THAT(registry_.UnconfirmedLeases(clock_.Now(), absl::Seconds(10)), IsEmpty());
  // Removing a worker ends the leases of its jobs.
  registry_.HoldSlot(w1, "j2", 1);
  registry_.Remove(w1, clock_.Now());
  EXPECT_EQ(registry_.leases(), 0u);
  EXPECT_THAT(registry_.SilentWorkers(clock_.Now() + absl::Seconds(30), absl::Seconds(10)),
              ElementsAre(w2));
}

TEST_F(WorkerRegistryTest, HeartbeatRenewsLeasesFreesEndedSlotsAndNamesJobsNotHeld) {
  const uint64_t w = Add("w1", {"a"}, 3);
  registry_.HoldSlot(w, "running", 1);
  registry_.Lease("running", w, clock_.Now());
  registry_.HoldSlot(w, "cancelled-still-running", 1);  // no lease: the front ended it
  registry_.HoldSlot(w, "cancelled-and-stopped", 1);
  clock_.Advance(absl::Seconds(8));
  google::protobuf::RepeatedPtrField<std::string> running;
  for (const char* id : {"running", "cancelled-still-running", "stranger"}) *running.Add() = id;
  WorkerRegistry::HeartbeatOutcome outcome = registry_.Heartbeat(w, running, clock_.Now());
  EXPECT_THAT(outcome.not_held, ElementsAre("stranger"));
  EXPECT_TRUE(outcome.freed_slot);
  EXPECT_THAT(registry_.Find(w)->jobs,
              ::testing::UnorderedElementsAre(::testing::Key("running"),
                                              ::testing::Key("cancelled-still-running")));
  clock_.Advance(absl::Seconds(5));  // renewed 5 s ago
  EXPECT_THAT(registry_.UnconfirmedLeases(clock_.Now(), absl::Seconds(10)), IsEmpty());
  EXPECT_FALSE(registry_.Heartbeat(w, running, clock_.Now()).freed_slot);
}

}  // namespace
}  // namespace tpdiff::server
