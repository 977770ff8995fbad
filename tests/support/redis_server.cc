#include "redis_server.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace tpdiff::testing {
namespace {

namespace fs = std::filesystem;

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':')) {
    if (dir.empty()) continue;
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// PONG on the socket (not LOADING while an AOF is read).
bool Answers(const std::string& socket) {
  timeval timeout{0, 200 * 1000};
  redisContext* context = redisConnectUnixWithTimeout(socket.c_str(), timeout);
  if (context == nullptr) return false;
  bool pong = false;
  if (context->err == 0) {
    auto* reply = static_cast<redisReply*>(redisCommand(context, "PING"));
    // NOAUTH (a password is set) also says the server is up.
    pong = reply != nullptr && (reply->type == REDIS_REPLY_STATUS ||
                                (reply->type == REDIS_REPLY_ERROR &&
                                 std::string(reply->str, reply->len).rfind("NOAUTH", 0) == 0));
    if (reply != nullptr) freeReplyObject(reply);
  }
  redisFree(context);
  return pong;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->options_ = options;
  std::string tmpl = (fs::temp_directory_path() / "tpdiff-redis-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  server->dir_ = tmpl;
  server->socket_ = tmpl + "/redis.sock";
  if (absl::Status spawned = server->Spawn(); !spawned.ok()) return spawned;
  return server;
}

absl::Status RedisServer::Spawn() {
  const std::string binary = FindOnPath("redis-server");
  if (binary.empty()) {
    return absl::FailedPreconditionError(
        "redis-server not found on PATH: the Redis tests need it (scripts/install-deps.sh "
        "installs redis-server)");
  }
  std::vector<std::string> args = {binary,         "--port",        "0",
                                   "--unixsocket", socket_,         "--unixsocketperm",
                                   "700",          "--dir",         dir_,
                                   "--save",       "",              "--daemonize",
                                   "no",           "--loglevel",    "warning",
                                   "--logfile",    dir_ + "/redis.log"};
  if (!options_.password.empty()) args.insert(args.end(), {"--requirepass", options_.password});
  if (options_.append_only) {
    args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", "always"});
  } else {
    args.insert(args.end(), {"--appendonly", "no"});
  }
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // Not the test's stdout/stderr: a runner reading them would wait for the server too.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  const int spawned = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    pid_ = 0;
    return absl::InternalError(absl::StrCat("posix_spawn ", binary, " failed: ", spawned));
  }
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (!Answers(socket_)) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return absl::InternalError(absl::StrCat("redis-server exited at start; see ", dir_,
                                              "/redis.log"));
    }
    if (absl::Now() > until) return absl::DeadlineExceededError("redis-server did not answer");
    absl::SleepFor(absl::Milliseconds(10));  // polling a real process starting up
  }
  return absl::OkStatus();
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = 0;
}

absl::Status RedisServer::Restart() {
  Kill();
  return Spawn();
}

RedisServer::~RedisServer() {
  Kill();
  std::error_code error;
  fs::remove_all(dir_, error);
}

}  // namespace tpdiff::testing
