// LocalWorkers (tpdiff-server --local-workers) with real child processes: /bin/sh scripts stand
// in for tpdiff-worker, so the test controls how a "worker" lives and dies. Waits poll the
// real processes with generous timeouts; the supervisor runs on real time.
#include "tpdiff/server/local_workers.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tpdiff/server/security.h"

namespace tpdiff::server {
namespace {

namespace fs = std::filesystem;

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

// True while `pid` exists (a zombie counts: it was not reaped).
bool Alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH); }

class LocalWorkersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "tpdiff-local-workers-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    log_ = dir_ + "/starts";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A "worker" that runs `prelude`, appends "<pid> <start time in ns>" to the log (so the
  // test knows the prelude ran), then runs `body`.
  LocalWorkers::Options Script(const std::string& body, int count = 1,
                               const std::string& prelude = "") {
    LocalWorkers::Options o;
    o.binary = "/bin/sh";
    o.args = {"-c", prelude + "echo $$ $(date +%s%N) >> '" + log_ + "'; " + body};
    o.count = count;
    o.restart_backoff = absl::Milliseconds(100);
    o.max_restart_backoff = absl::Milliseconds(400);
    o.stop_timeout = absl::Seconds(5);
    return o;
  }

  struct Start {
    pid_t pid;
    int64_t ns;
  };
  std::vector<Start> Starts() const {
    std::vector<Start> starts;
    std::ifstream in(log_);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      Start s{};
      if (f.size() == 2 && absl::SimpleAtoi(f[0], &s.pid) && absl::SimpleAtoi(f[1], &s.ns)) {
        starts.push_back(s);
      }
    }
    return starts;
  }

  std::string dir_;
  std::string log_;
};

TEST_F(LocalWorkersTest, MissingBinaryIsNotFound) {
  LocalWorkers::Options o;
  o.binary = dir_ + "/no-such-worker";
  o.count = 1;
  LocalWorkers workers(o);
  EXPECT_EQ(workers.Start().code(), absl::StatusCode::kNotFound);
}

TEST_F(LocalWorkersTest, AKilledWorkerIsRestarted) {
  LocalWorkers workers(Script("exec sleep 60", 2));
  ASSERT_TRUE(workers.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return Starts().size() == 2; }));
  const std::vector<pid_t> before = workers.pids();
  ASSERT_THAT(before, ::testing::Each(::testing::Gt(0)));
  ASSERT_EQ(kill(before[0], SIGKILL), 0);

  ASSERT_TRUE(WaitFor([&] { return workers.restarts() == 1 && workers.pids()[0] > 0; }));
  const std::vector<pid_t> after = workers.pids();
  EXPECT_NE(after[0], before[0]);
  EXPECT_EQ(after[1], before[1]) << "only the dead worker is restarted";
  EXPECT_TRUE(WaitFor([&] { return Starts().size() == 3; }));
  EXPECT_EQ(Starts().back().pid, after[0]);
}

TEST_F(LocalWorkersTest, RestartsBackOffExponentiallyUpToTheMaximum) {
  // A worker that exits at once (a bad flag, a missing model): restarted after 100, 200,
  // 400 and 400 ms, not in a tight loop.
  LocalWorkers workers(Script("exit 3"));
  ASSERT_TRUE(workers.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return Starts().size() >= 5; }));
  workers.Stop();
  const std::vector<Start> starts = Starts();
  const std::vector<int64_t> backoff_ms = {100, 200, 400, 400};
  for (size_t i = 0; i < backoff_ms.size(); ++i) {
    const int64_t gap_ms = (starts[i + 1].ns - starts[i].ns) / 1000000;
    EXPECT_GE(gap_ms, backoff_ms[i]) << "restart " << i + 1;
    // The supervisor looks every 200 ms; anything far beyond that is a stuck supervisor.
    EXPECT_LT(gap_ms, backoff_ms[i] + 2000) << "restart " << i + 1;
  }
  EXPECT_GE(workers.restarts(), 4);
}

// Graceful shutdown drains the workers and they exit by themselves; a restarted worker would
// register with a front that is going away and be killed mid-start.
TEST_F(LocalWorkersTest, WorkersThatExitAfterShutdownBeganAreNotRestarted) {
  LocalWorkers workers(Script("exec sleep 60", 2));
  ASSERT_TRUE(workers.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return Starts().size() == 2; }));
  workers.StopRestarting();
  for (pid_t pid : workers.pids()) ASSERT_EQ(kill(pid, SIGTERM), 0);
  ASSERT_TRUE(WaitFor([&] {
    const std::vector<pid_t> pids = workers.pids();
    return pids[0] == 0 && pids[1] == 0;
  }));
  // Longer than restart_backoff plus two supervisor rounds: a restart would have happened.
  absl::SleepFor(absl::Milliseconds(700));
  EXPECT_EQ(workers.restarts(), 0);
  EXPECT_EQ(Starts().size(), 2u);
  EXPECT_THAT(workers.pids(), ::testing::Each(0));
}

// A worker that ran healthily for healthy_after before it died restarts after the first
// delay again, not after the doubled delays of its earlier crashes.
TEST_F(LocalWorkersTest, BackoffResetsAfterAWorkerRanHealthily) {
  const std::string flag = dir_ + "/run-long";
  // Exits at once until the flag file exists; then runs until killed.
  LocalWorkers::Options o = Script(
      "if [ -e '" + flag + "' ]; then exec sleep 60; else exit 3; fi");
  o.restart_backoff = absl::Milliseconds(100);
  o.max_restart_backoff = absl::Seconds(3);
  o.healthy_after = absl::Milliseconds(500);
  LocalWorkers workers(o);
  ASSERT_TRUE(workers.Start().ok());
  // Crashes at 0, +100, +200, +400 ms: the next delay is 800 ms.
  ASSERT_TRUE(WaitFor([&] { return Starts().size() >= 4; }));
  std::ofstream(flag).put('1');
  ASSERT_TRUE(WaitFor([&] { return workers.pids()[0] > 0 && Starts().size() >= 5; }));
  const pid_t healthy = workers.pids()[0];
  absl::SleepFor(absl::Milliseconds(800));  // longer than healthy_after
  ASSERT_EQ(kill(healthy, SIGKILL), 0);
  const size_t before = Starts().size();
  ASSERT_TRUE(WaitFor([&] { return Starts().size() == before + 1; }));
  workers.Stop();
  const std::vector<Start> starts = Starts();
  const int64_t gap_ms = (starts.back().ns - starts[starts.size() - 2].ns) / 1000000;
  // 800 ms of healthy running plus the reset 100 ms delay and up to two supervisor rounds of
  // 200 ms; without the reset the gap would be at least 800 + 1,600 ms.
  EXPECT_LT(gap_ms, 2200) << "the backoff was not reset";
}

TEST_F(LocalWorkersTest, StopTerminatesAndReapsEveryChild) {
  LocalWorkers workers(Script("exec sleep 60", 3));
  ASSERT_TRUE(workers.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return Starts().size() == 3; }));
  const std::vector<pid_t> pids = workers.pids();
  const absl::Time begin = absl::Now();
  workers.Stop();
  EXPECT_LT(absl::Now() - begin, absl::Seconds(5)) << "SIGTERM should have been enough";
  for (pid_t pid : pids) EXPECT_FALSE(Alive(pid)) << pid;
  EXPECT_THAT(workers.pids(), ::testing::Each(0));
  EXPECT_EQ(workers.restarts(), 0) << "stopped workers are not restarted";
}

// The worker secret reaches each child in its environment (only its user can read that),
// never on its command line (anyone can, through ps), and replaces one this process has.
TEST_F(LocalWorkersTest, TheSecretIsInTheChildsEnvironmentNotItsCommandLine) {
  ASSERT_EQ(setenv(kWorkerSecretEnv, "stale-secret-of-the-parent", 1), 0);
  LocalWorkers::Options o = Script("exec sleep 60");
  o.secret = "secret-for-the-local-workers";
  LocalWorkers workers(o);
  ASSERT_TRUE(workers.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return Starts().size() == 1; }));
  const pid_t pid = workers.pids()[0];
  const auto proc_strings = [pid](const char* file) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/" + file, std::ios::binary);
    std::vector<std::string> strings;
    for (std::string s; std::getline(in, s, '\0');) strings.push_back(s);
    return strings;
  };
  const std::vector<std::string> environment = proc_strings("environ");
  const std::vector<std::string> command_line = proc_strings("cmdline");
  workers.Stop();
  unsetenv(kWorkerSecretEnv);
  EXPECT_THAT(environment, ::testing::Contains(absl::StrCat(kWorkerSecretEnv, "=", o.secret)));
  EXPECT_THAT(environment, ::testing::Not(::testing::Contains(::testing::HasSubstr("stale"))));
  EXPECT_THAT(command_line, ::testing::Not(::testing::Contains(::testing::HasSubstr(o.secret))));
  EXPECT_FALSE(command_line.empty());
}

TEST_F(LocalWorkersTest, StopKillsAChildThatIgnoresSigterm) {
  LocalWorkers::Options o = Script("exec sleep 60", 1, "trap '' TERM; ");
  o.stop_timeout = absl::Milliseconds(300);
  LocalWorkers workers(o);
  ASSERT_TRUE(workers.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return Starts().size() == 1; }));
  const pid_t pid = workers.pids()[0];
  workers.Stop();
  EXPECT_FALSE(Alive(pid));
}

}  // namespace
}  // namespace tpdiff::server
