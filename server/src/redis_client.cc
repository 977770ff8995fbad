#include "tpdiff/server/redis_client.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tpdiff::server {
namespace {

constexpr absl::Duration kConnectTimeout = absl::Seconds(1);
constexpr absl::Duration kCommandTimeout = absl::Seconds(3);
constexpr absl::Duration kMinBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);

timeval Timeval(absl::Duration d) { return absl::ToTimeval(d); }

RedisReply Copy(const redisReply* reply) {
  RedisReply out;
  if (reply == nullptr) return out;
  switch (reply->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = reply->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      for (size_t i = 0; i < reply->elements; ++i) out.elements.push_back(Copy(reply->element[i]));
      break;
    default:
      break;
  }
  return out;
}

std::string Sha1Hex(const std::string& data) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// Sends one command and reads its reply. nullptr on a connection error.
redisReply* Execute(redisContext* context, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return static_cast<redisReply*>(
      redisCommandArgv(context, static_cast<int>(args.size()), argv.data(), lengths.data()));
}

}  // namespace

std::string RedisAddress::Describe() const {
  return unix_path.empty() ? absl::StrCat(host, ":", port) : unix_path;
}

absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url) {
  RedisAddress address;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--state: \"", url, "\" ", why,
        "; expected memory, redis://HOST:PORT[/DB] or unix:///PATH[?db=N]"));
  };
  if (url.find('@') != absl::string_view::npos) {
    // Not echoed: it holds a password.
    return absl::InvalidArgumentError(
        "--state: a URL with credentials is not accepted; give the password with "
        "--redis-password-file or TPDIFF_REDIS_PASSWORD");
  }
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "unix://")) {
    absl::string_view path = rest;
    if (size_t q = rest.find('?'); q != absl::string_view::npos) {
      path = rest.substr(0, q);
      absl::string_view query = rest.substr(q + 1);
      if (!absl::ConsumePrefix(&query, "db=") || !absl::SimpleAtoi(query, &address.db) ||
          address.db < 0) {
        return bad("has a query other than db=N");
      }
    }
    if (path.empty() || path[0] != '/') return bad("needs an absolute socket path");
    address.unix_path = std::string(path);
    return address;
  }
  if (!absl::ConsumePrefix(&rest, "redis://")) return bad("is not a known state backend");
  absl::string_view host_port = rest;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    host_port = rest.substr(0, slash);
    absl::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!absl::SimpleAtoi(db, &address.db) || address.db < 0)) {
      return bad("has a database that is not a number");
    }
  }
  size_t colon = host_port.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return bad("needs HOST:PORT");
  if (!absl::SimpleAtoi(host_port.substr(colon + 1), &address.port) || address.port <= 0 ||
      address.port > 65535) {
    return bad("has a port outside 1..65535");
  }
  address.host = std::string(host_port.substr(0, colon));
  return address;
}

absl::Status RedisUnreachable(const RedisAddress& address, absl::string_view what) {
  return absl::UnavailableError(
      absl::StrCat("state: redis at ", address.Describe(), " unreachable: ", what));
}

absl::StatusOr<redisContext*> RedisConnect(const RedisAddress& address, absl::Duration timeout) {
  // hiredis writes with write(2): a server gone mid-command must be an error, not SIGPIPE
  // ending the process (gRPC ignores SIGPIPE for its own sockets likewise).
  static const bool ignored = [] { return signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)ignored;
  const timeval tv = Timeval(timeout);
  redisContext* context = address.unix_path.empty()
                              ? redisConnectWithTimeout(address.host.c_str(), address.port, tv)
                              : redisConnectUnixWithTimeout(address.unix_path.c_str(), tv);
  if (context == nullptr) return RedisUnreachable(address, "cannot allocate a context");
  if (context->err != 0) {
    absl::Status status = RedisUnreachable(address, context->errstr);
    redisFree(context);
    return status;
  }
  redisSetTimeout(context, Timeval(kCommandTimeout));
  auto setup = [&](const std::vector<std::string>& args) -> absl::Status {
    redisReply* reply = Execute(context, args);
    if (reply == nullptr) return RedisUnreachable(address, context->errstr);
    absl::Status status;
    if (reply->type == REDIS_REPLY_ERROR) {
      status = RedisUnreachable(address, absl::StrCat(args[0], ": ",
                                                      absl::string_view(reply->str, reply->len)));
    }
    freeReplyObject(reply);
    return status;
  };
  absl::Status status;
  if (!address.password.empty()) status = setup({"AUTH", address.password});
  if (status.ok() && address.db != 0) status = setup({"SELECT", absl::StrCat(address.db)});
  if (!status.ok()) {
    redisFree(context);
    return status;
  }
  return context;
}

RedisScript::RedisScript(std::string text) : source(std::move(text)), sha1(Sha1Hex(source)) {}

RedisPool::RedisPool(RedisAddress address, int size) : address_(std::move(address)) {
  for (int i = 0; i < std::max(size, 1); ++i) free_.push_back(std::make_unique<Connection>());
}

RedisPool::~RedisPool() {
  absl::MutexLock lock(&mu_);
  for (auto& connection : free_) {
    if (connection->context != nullptr) redisFree(connection->context);
  }
}

absl::Status RedisPool::Unreachable(absl::string_view what) const {
  return RedisUnreachable(address_, what);
}

absl::Status RedisPool::Connect(Connection& connection) {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Now() < retry_at_) return last_error_;
  }
  absl::StatusOr<redisContext*> context = RedisConnect(address_, kConnectTimeout);
  absl::MutexLock lock(&mu_);
  if (!context.ok()) {
    last_error_ = context.status();
    retry_at_ = absl::Now() + backoff_;
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    return last_error_;
  }
  connection.context = *context;
  return absl::OkStatus();
}

absl::StatusOr<RedisReply> RedisPool::Run(const std::vector<std::string>& args, bool* noscript) {
  std::unique_ptr<Connection> connection;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::vector<std::unique_ptr<Connection>>* free) { return !free->empty(); }, &free_));
    connection = std::move(free_.back());
    free_.pop_back();
  }
  absl::StatusOr<RedisReply> result;
  absl::Status connected =
      connection->context != nullptr ? absl::OkStatus() : Connect(*connection);
  if (!connected.ok()) {
    result = connected;
  } else {
    redisReply* reply = Execute(connection->context, args);
    if (reply == nullptr) {
      result = Unreachable(connection->context->errstr);
      redisFree(connection->context);
      connection->context = nullptr;
    } else {
      if (reply->type == REDIS_REPLY_ERROR) {
        const absl::string_view text(reply->str, reply->len);
        if (noscript != nullptr && absl::StartsWith(text, "NOSCRIPT")) *noscript = true;
        // LOADING / READONLY / MASTERDOWN: a restarting or demoted server, worth a retry;
        // NOAUTH / WRONGPASS / "unauthenticated" (a long command before AUTH): a password
        // missing or wrong, reported the same way. The connection starts afresh.
        if (absl::StartsWith(text, "LOADING") || absl::StartsWith(text, "READONLY") ||
            absl::StartsWith(text, "MASTERDOWN") || absl::StartsWith(text, "NOAUTH") ||
            absl::StartsWith(text, "WRONGPASS") ||
            absl::StrContains(text, "Protocol error: unauthenticated")) {
          result = Unreachable(text);
          freeReplyObject(reply);
          reply = nullptr;
          redisFree(connection->context);
          connection->context = nullptr;
        } else {
          result = absl::InternalError(absl::StrCat("state: redis ", args[0], ": ", text));
        }
      } else {
        result = Copy(reply);
      }
      if (reply != nullptr) freeReplyObject(reply);
    }
  }
  absl::MutexLock lock(&mu_);
  if (result.ok()) {
    last_error_ = absl::OkStatus();
    backoff_ = kMinBackoff;
  } else if (absl::IsUnavailable(result.status())) {
    last_error_ = result.status();
  }
  free_.push_back(std::move(connection));
  return result;
}

absl::StatusOr<RedisReply> RedisPool::Command(const std::vector<std::string>& args) {
  return Run(args, nullptr);
}

absl::StatusOr<RedisReply> RedisPool::Eval(const RedisScript& script,
                                           const std::vector<std::string>& keys,
                                           const std::vector<std::string>& args) {
  std::vector<std::string> command = {"EVALSHA", script.sha1, absl::StrCat(keys.size())};
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  bool noscript = false;
  absl::StatusOr<RedisReply> reply = Run(command, &noscript);
  if (!noscript) return reply;
  command[0] = "EVAL";
  command[1] = script.source;
  return Run(command, nullptr);
}

absl::Status RedisPool::Ping() { return Command({"PING"}).status(); }

absl::Status RedisPool::LastError() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

RedisSubscriber::RedisSubscriber(RedisAddress address, std::vector<std::string> channels,
                                 MessageFn on_message, std::function<void()> on_resubscribed)
    : address_(std::move(address)),
      channels_(std::move(channels)),
      on_message_(std::move(on_message)),
      on_resubscribed_(std::move(on_resubscribed)),
      thread_([this] { Loop(); }) {}

RedisSubscriber::~RedisSubscriber() { Stop(); }

void RedisSubscriber::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void RedisSubscriber::Loop() {
  absl::Duration backoff = kMinBackoff;
  while (!stop_) {
    absl::StatusOr<redisContext*> connected = RedisConnect(address_, kConnectTimeout);
    if (!connected.ok()) {
      // Sleep in short slices so Stop() is prompt.
      const absl::Time until = absl::Now() + backoff;
      while (!stop_ && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    redisContext* context = *connected;
    std::vector<std::string> subscribe = {"SUBSCRIBE"};
    subscribe.insert(subscribe.end(), channels_.begin(), channels_.end());
    bool ok = true;
    {
      std::vector<const char*> argv;
      std::vector<size_t> lengths;
      for (const std::string& arg : subscribe) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      ok = redisAppendCommandArgv(context, static_cast<int>(argv.size()), argv.data(),
                                  lengths.data()) == REDIS_OK;
      int done = 0;
      while (ok && done == 0) ok = redisBufferWrite(context, &done) == REDIS_OK;
    }
    size_t confirmed = 0;
    while (ok && !stop_) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(context, &raw) != REDIS_OK) break;
      if (raw == nullptr) {
        pollfd fd{context->fd, POLLIN, 0};
        const int ready = poll(&fd, 1, 100);
        if (ready < 0) break;
        if (ready > 0 && redisBufferRead(context) != REDIS_OK) break;
        continue;
      }
      RedisReply reply = Copy(static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      if (reply.type != RedisReply::Type::kArray || reply.elements.size() < 3) continue;
      const std::string& kind = reply.elements[0].str;
      if (kind == "subscribe") {
        if (++confirmed == channels_.size()) {
          connected_ = true;
          backoff = kMinBackoff;
          // Also the first time: what was published before the subscription is missed.
          if (on_resubscribed_) on_resubscribed_();
        }
      } else if (kind == "message") {
        on_message_(reply.elements[1].str, reply.elements[2].str);
      }
    }
    connected_ = false;
    redisFree(context);
  }
}

}  // namespace tpdiff::server
