#ifndef TPDIFF_SERVER_REDIS_CLIENT_H_
#define TPDIFF_SERVER_REDIS_CLIENT_H_

// A small synchronous Redis client over hiredis for the shared front state (redis_state.h):
// a pool of connections that reconnect by themselves with backoff, Lua scripts by SHA, and a
// subscriber thread for pub/sub. Every failure is UNAVAILABLE naming the server:
//   "state: redis at HOST:PORT unreachable: <hiredis error>".

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct redisContext;

namespace tpdiff::server {

// Where the shared state lives: --state=redis://HOST:PORT[/DB] or unix:///path.sock[?db=N].
struct RedisAddress {
  std::string host;       // TCP host, empty for a unix socket
  int port = 0;
  std::string unix_path;  // set for unix://
  int db = 0;
  std::string password;   // from --redis-password-file or TPDIFF_REDIS_PASSWORD; never a flag
  // "HOST:PORT" or the socket path, for messages (never the password).
  std::string Describe() const;
};

// INVALID_ARGUMENT naming --state for anything but the two forms above.
absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url);

// A reply, copied out of hiredis.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kArray, kStatus };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString and kStatus
  std::vector<RedisReply> elements;
  bool nil() const { return type == Type::kNil; }
};

// A Lua script, sent once per connection (EVALSHA, EVAL on NOSCRIPT).
struct RedisScript {
  explicit RedisScript(std::string source);
  std::string source;
  std::string sha1;  // lower-case hex
};

// Connections to one Redis server. Each command takes a free connection (waiting when all
// are busy), so commands from different threads run in parallel up to `size`.
//
// Reconnection: a failed connection is closed; the next command reconnects unless the last
// attempt failed less than the backoff ago (100 ms doubling to 2 s), in which case it fails
// at once with the last error, so callers never queue behind a dead server.
// Thread safety: all methods are thread-safe; no callbacks.
class RedisPool {
 public:
  RedisPool(RedisAddress address, int size);
  ~RedisPool();

  // A command as its arguments (binary-safe). A Redis error reply is INTERNAL with its text,
  // except NOSCRIPT handling inside Eval.
  absl::StatusOr<RedisReply> Command(const std::vector<std::string>& args);
  absl::StatusOr<RedisReply> Eval(const RedisScript& script, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args);
  // OK when a PING answers.
  absl::Status Ping();
  // The last connection error (OK after a successful command).
  absl::Status LastError() const;
  const RedisAddress& address() const { return address_; }

 private:
  struct Connection {
    redisContext* context = nullptr;
  };
  absl::StatusOr<RedisReply> Run(const std::vector<std::string>& args, bool* noscript);
  absl::Status Connect(Connection& connection);
  absl::Status Unreachable(absl::string_view what) const;

  const RedisAddress address_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> free_ ABSL_GUARDED_BY(mu_);
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_) = absl::Milliseconds(100);
};

// Opens a connection (AUTH, SELECT) for `address`; the caller owns it (redisFree).
absl::StatusOr<redisContext*> RedisConnect(const RedisAddress& address, absl::Duration timeout);
// The same message for every failure: "state: redis at HOST:PORT unreachable: <what>".
absl::Status RedisUnreachable(const RedisAddress& address, absl::string_view what);

// A thread subscribed to channels, calling `on_message(channel, payload)` for each message
// and `on_resubscribed()` once subscribed, the first time and after every reconnect
// (messages published before are lost, so the owner re-reads what it waits for).
// Reconnects with backoff.
//
// Thread safety: the callbacks run on the subscriber thread, one at a time, with no lock of
// this class held; they must not block for long. Stop() joins the thread.
class RedisSubscriber {
 public:
  using MessageFn = std::function<void(const std::string& channel, const std::string& payload)>;
  RedisSubscriber(RedisAddress address, std::vector<std::string> channels, MessageFn on_message,
                  std::function<void()> on_resubscribed);
  ~RedisSubscriber();
  void Stop();
  bool connected() const { return connected_.load(); }

 private:
  void Loop();

  const RedisAddress address_;
  const std::vector<std::string> channels_;
  const MessageFn on_message_;
  const std::function<void()> on_resubscribed_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_REDIS_CLIENT_H_
