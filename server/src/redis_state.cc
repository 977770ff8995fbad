#include "tpdiff/server/redis_state.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tpdiff/common/proto_time.h"
#include "tpdiff/server/admission.h"

namespace tpdiff::server {
namespace {

using tpdiff::v1::Job;
using tpdiff::v1::JobEvent;

// Channels, after the key prefix.
constexpr char kEventsChannel[] = "events";  // payload: job id
constexpr char kQueuedChannel[] = "queued";  // payload: model
constexpr char kCancelChannel[] = "cancel";  // payload: job id, '\n', reason

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

// Every script starts with the key prefix in ARGV[1].
constexpr char kPrelude[] = R"lua(
local P = ARGV[1]
)lua";

// Removes a queued job from the queue's indexes (not its hash); its encoding, or nil when it
// is not queued.
constexpr char kUnqueue[] = R"lua(
local function unqueue(id)
  local k = P .. 'qj:' .. id
  local v = redis.call('HMGET', k, 'level', 'model', 'tenant', 'enc', 'state')
  if not v[1] or v[5] ~= 'q' then return nil end
  redis.call('ZREM', P .. 'q:' .. v[1] .. ':' .. v[2], id)
  redis.call('ZREM', P .. 'qage:' .. v[1], id)
  redis.call('ZREM', P .. 'qdl', id)
  if redis.call('HINCRBY', P .. 'qmodels', v[2], -1) <= 0 then redis.call('HDEL', P .. 'qmodels', v[2]) end
  if redis.call('HINCRBY', P .. 'qtenant', v[3], -1) <= 0 then redis.call('HDEL', P .. 'qtenant', v[3]) end
  return v[4]
end
local function take(id, out)
  local e = unqueue(id)
  if e then
    redis.call('DEL', P .. 'qj:' .. id)
    table.insert(out, e)
  end
end
)lua";

RedisScript Script(absl::string_view library, absl::string_view body) {
  return RedisScript(absl::StrCat(kPrelude, library, body));
}

// ---- job store ----

// ARGV: P, id, tenant, request_id, job bytes. 0 created, 1 id taken, 2 request id taken.
constexpr char kCreateLua[] = R"lua(
local id, tenant, rid, job = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jk = P .. 'job:' .. id
if redis.call('EXISTS', jk) == 1 then return 1 end
local rk = ''
if rid ~= '' then
  rk = P .. 'rid:' .. tenant .. '\n' .. rid
  if redis.call('EXISTS', rk) == 1 then return 2 end
  redis.call('SET', rk, id)
end
local bytes = string.len(job) + string.len(tenant)
redis.call('HSET', jk, 'job', job, 'tenant', tenant, 'rid', rk, 'bytes', bytes, 'finished', '0')
redis.call('INCRBY', P .. 'bytes', bytes)
redis.call('INCR', P .. 'jobs')
return 0
)lua";

// ARGV: P, id. {job bytes, finished, events} or nil.
constexpr char kReadLua[] = R"lua(
local v = redis.call('HMGET', P .. 'job:' .. ARGV[2], 'job', 'finished')
if not v[1] then return false end
return {v[1], v[2], redis.call('LLEN', P .. 'events:' .. ARGV[2])}
)lua";

// ARGV: P, id, expected length, event bytes, job bytes, terminal, now (us).
// The new seq, or -1 unknown job, -2 ended, -3 another append came first.
constexpr char kAppendLua[] = R"lua(
local id = ARGV[2]
local jk, ek = P .. 'job:' .. id, P .. 'events:' .. id
local fin = redis.call('HGET', jk, 'finished')
if not fin then return -1 end
if fin == '1' then return -2 end
local n = tonumber(ARGV[3])
if redis.call('LLEN', ek) ~= n then return -3 end
redis.call('RPUSH', ek, ARGV[4])
redis.call('HSET', jk, 'job', ARGV[5])
local size = string.len(ARGV[4])
redis.call('HINCRBY', jk, 'bytes', size)
redis.call('INCRBY', P .. 'bytes', size)
if ARGV[6] == '1' then
  redis.call('HSET', jk, 'finished', '1')
  redis.call('ZADD', P .. 'finished', ARGV[7], id)
end
redis.call('PUBLISH', P .. 'events', id)
return n + 1
)lua";

// ARGV: P, id, after_seq. {1, event} | {0, finished} | {-1} unknown.
constexpr char kNextLua[] = R"lua(
local fin = redis.call('HGET', P .. 'job:' .. ARGV[2], 'finished')
if not fin then return {-1} end
local e = redis.call('LINDEX', P .. 'events:' .. ARGV[2], tonumber(ARGV[3]))
if e then return {1, e} end
return {0, fin}
)lua";

// Deletes a job's keys and its share of the counts; appends its id to `out`.
constexpr char kDrop[] = R"lua(
local out = {}
local function drop(id)
  local jk = P .. 'job:' .. id
  local v = redis.call('HMGET', jk, 'rid', 'bytes')
  if v[1] and v[1] ~= '' and redis.call('GET', v[1]) == id then redis.call('DEL', v[1]) end
  if v[2] then
    redis.call('DECRBY', P .. 'bytes', v[2])
    redis.call('DECR', P .. 'jobs')
  end
  redis.call('DEL', jk, P .. 'events:' .. id)
  redis.call('ZREM', P .. 'finished', id)
  table.insert(out, id)
end
)lua";

// ARGV: P, id. After kDrop.
constexpr char kDiscardLua[] = R"lua(
if redis.call('EXISTS', P .. 'job:' .. ARGV[2]) == 1 then drop(ARGV[2]) end
return 0
)lua";

// ARGV: P, now (us), ttl (us), budget, watched ids... The evicted ids. After kDrop.
constexpr char kEvictLua[] = R"lua(
local expired = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf',
                           tonumber(ARGV[2]) - tonumber(ARGV[3]), 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do drop(id) end
local watched = {}
for i = 5, #ARGV do watched[ARGV[i]] = true end
local budget = tonumber(ARGV[4])
local skip = 0
while tonumber(redis.call('GET', P .. 'bytes') or '0') > budget do
  local first = redis.call('ZRANGE', P .. 'finished', skip, skip)
  if #first == 0 then break end
  if watched[first[1]] then skip = skip + 1 else drop(first[1]) end
end
return out
)lua";

// ---- work queue ----

// ARGV: P, id, level, model, tenant, enc, enqueued (us), deadline (us or ''), max tenant
// queued, capacity, front ('1' re-queue). {0} | {1, tenant's queued} | {2, level's size}.
constexpr char kPushLua[] = R"lua(
local id, level, model, tenant = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local k = P .. 'qj:' .. id
if ARGV[11] == '0' then
  local maxq = tonumber(ARGV[9])
  if maxq > 0 then
    local n = tonumber(redis.call('HGET', P .. 'qtenant', tenant) or '0')
    if n >= maxq then return {1, n} end
  end
  local size = redis.call('ZCARD', P .. 'qage:' .. level)
  if size >= tonumber(ARGV[10]) then return {2, size} end
else
  redis.call('HDEL', P .. 'running', id)
  unqueue(id)
end
local seq
if ARGV[11] == '1' then
  seq = redis.call('DECR', P .. 'qfront:' .. level)
else
  seq = redis.call('INCR', P .. 'qback:' .. level)
end
redis.call('ZADD', P .. 'q:' .. level .. ':' .. model, seq, id)
redis.call('ZADD', P .. 'qage:' .. level, ARGV[7], id)
if ARGV[8] ~= '' then redis.call('ZADD', P .. 'qdl', ARGV[8], id) end
redis.call('HINCRBY', P .. 'qmodels', model, 1)
redis.call('HINCRBY', P .. 'qtenant', tenant, 1)
redis.call('DEL', k)
redis.call('HSET', k, 'level', level, 'model', model, 'tenant', tenant, 'enc', ARGV[6], 'state', 'q')
redis.call('PUBLISH', P .. 'queued', model)
return {0, 0}
)lua";

// ARGV: P, now (us), aging (us), replica, models... The popped job's encoding or nil.
// Within a level FIFO across the served models; across levels (effective level, admission
// time, level), as PriorityJobQueue.
constexpr char kPopLua[] = R"lua(
local now, aging = tonumber(ARGV[2]), tonumber(ARGV[3])
local best, best_eff, best_enq, best_level
for level = 0, 2 do
  local head, head_seq
  for i = 5, #ARGV do
    local h = redis.call('ZRANGE', P .. 'q:' .. level .. ':' .. ARGV[i], 0, 0, 'WITHSCORES')
    if #h > 0 and (not head or tonumber(h[2]) < head_seq) then head, head_seq = h[1], tonumber(h[2]) end
  end
  if head then
    local enq = tonumber(redis.call('ZSCORE', P .. 'qage:' .. level, head))
    local eff = level
    if aging > 0 and now > enq then eff = level - math.floor((now - enq) / aging) end
    if not best or eff < best_eff or (eff == best_eff and enq < best_enq) then
      best, best_eff, best_enq, best_level = head, eff, enq, level
    end
  end
end
if not best then return false end
local enc = unqueue(best)
redis.call('HSET', P .. 'qj:' .. best, 'state', 'r', 'replica', ARGV[4])
redis.call('HSET', P .. 'running', best, ARGV[4])
return enc
)lua";

// ARGV: P, id. The removed job's encoding or nil.
constexpr char kRemoveLua[] = R"lua(
local out = {}
take(ARGV[2], out)
return out[1] or false
)lua";

// ARGV: P, now (us). Encodings of the expired jobs.
constexpr char kTakeExpiredLua[] = R"lua(
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'qdl', '-inf', ARGV[2])) do take(id, out) end
return out
)lua";

// ARGV: P, model, enqueued_by (us).
constexpr char kTakeModelLua[] = R"lua(
local out = {}
for level = 0, 2 do
  for _, id in ipairs(redis.call('ZRANGE', P .. 'q:' .. level .. ':' .. ARGV[2], 0, -1)) do
    if tonumber(redis.call('ZSCORE', P .. 'qage:' .. level, id)) <= tonumber(ARGV[3]) then
      take(id, out)
    end
  end
end
return out
)lua";

// ARGV: P.
constexpr char kTakeAllLua[] = R"lua(
local out = {}
for level = 0, 2 do
  for _, id in ipairs(redis.call('ZRANGE', P .. 'qage:' .. level, 0, -1)) do take(id, out) end
end
return out
)lua";

// ARGV: P, level, now (us), aging (us). Jobs that start before a new job of `level`: every
// job of its level and above, and the lower-priority jobs aged to its level.
constexpr char kAheadLua[] = R"lua(
local L, now, aging = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = 0
for l = 0, 2 do
  if l <= L then
    n = n + redis.call('ZCARD', P .. 'qage:' .. l)
  elseif aging > 0 then
    n = n + redis.call('ZCOUNT', P .. 'qage:' .. l, '-inf', now - (l - L) * aging)
  end
end
return n
)lua";

// ARGV: P. Sizes of the three levels.
constexpr char kSizesLua[] = R"lua(
return {redis.call('ZCARD', P .. 'qage:0'), redis.call('ZCARD', P .. 'qage:1'),
        redis.call('ZCARD', P .. 'qage:2')}
)lua";

// ARGV: P, id, replica. Drops the job's lease if this replica holds it.
constexpr char kFinishedLua[] = R"lua(
local k = P .. 'qj:' .. ARGV[2]
local v = redis.call('HMGET', k, 'state', 'replica')
if v[1] == 'r' and v[2] == ARGV[3] then redis.call('DEL', k) end
if redis.call('HGET', P .. 'running', ARGV[2]) == ARGV[3] then redis.call('HDEL', P .. 'running', ARGV[2]) end
return 0
)lua";

// ARGV: P, replica. Leases of replicas without a liveness key, moved to this one.
constexpr char kOrphansLua[] = R"lua(
local all = redis.call('HGETALL', P .. 'running')
local out = {}
for i = 1, #all, 2 do
  local id, owner = all[i], all[i + 1]
  if owner ~= ARGV[2] and redis.call('EXISTS', P .. 'alive:' .. owner) == 0 then
    local e = redis.call('HGET', P .. 'qj:' .. id, 'enc')
    if e then
      redis.call('HSET', P .. 'running', id, ARGV[2])
      redis.call('HSET', P .. 'qj:' .. id, 'replica', ARGV[2])
      table.insert(out, e)
    else
      redis.call('HDEL', P .. 'running', id)
    end
  end
end
return out
)lua";

// ARGV: P, replica, ttl (ms), served models... Renews liveness; models announced until
// their expiry (Redis's clock, so replicas' clocks need not agree).
constexpr char kHeartbeatLua[] = R"lua(
redis.call('SET', P .. 'alive:' .. ARGV[2], '1', 'PX', ARGV[3])
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
for i = 4, #ARGV do
  redis.call('HSET', P .. 'served:' .. ARGV[i], ARGV[2], string.format('%.0f', expiry))
end
return 0
)lua";

// ARGV: P, model, replica. 1 when another replica announced the model and has not expired.
constexpr char kServedLua[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', P .. 'served:' .. ARGV[2])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) <= now then
    redis.call('HDEL', P .. 'served:' .. ARGV[2], all[i])
  elseif all[i] ~= ARGV[3] then
    return 1
  end
end
return 0
)lua";

// ---- tenant limits ----

// ARGV: P, tenant, rate, burst, now (us). 1 when a token was taken.
constexpr char kTokenLua[] = R"lua(
local k = P .. 'bucket:' .. ARGV[2]
local rate, burst, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HMGET', k, 'tokens', 'last')
local tokens, last = burst, now
if v[1] then tokens, last = tonumber(v[1]), tonumber(v[2]) end
if now > last then
  tokens = math.min(burst, tokens + rate * (now - last) / 1e6)
  last = now
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', k, 'tokens', string.format('%.17g', tokens), 'last', string.format('%.0f', last))
if rate > 0 then redis.call('PEXPIRE', k, math.ceil(burst / rate * 1000) + 60000) end
return taken
)lua";

// Sums the open streams of live replicas (this one always counts), dropping dead ones.
constexpr char kStreamCount[] = R"lua(
local k = P .. 'streams:' .. ARGV[2]
local all = redis.call('HGETALL', k)
local n = 0
for i = 1, #all, 2 do
  if all[i] == ARGV[3] or redis.call('EXISTS', P .. 'alive:' .. all[i]) == 1 then
    n = n + tonumber(all[i + 1])
  else
    redis.call('HDEL', k, all[i])
  end
end
)lua";

// ARGV: P, tenant, replica, max. 1 when a stream was counted. After kStreamCount.
constexpr char kAcquireStreamLua[] = R"lua(
local max = tonumber(ARGV[4])
if max > 0 and n >= max then return 0 end
redis.call('HINCRBY', k, ARGV[3], 1)
return 1
)lua";

// ARGV: P, tenant, replica.
constexpr char kReleaseStreamLua[] = R"lua(
local k = P .. 'streams:' .. ARGV[2]
if tonumber(redis.call('HGET', k, ARGV[3]) or '0') > 0 then redis.call('HINCRBY', k, ARGV[3], -1) end
return 0
)lua";

// ARGV: P, tenant, replica. After kStreamCount.
constexpr char kCountStreamsLua[] = "\nreturn n\n";

// Every script, hashed once.
struct Scripts {
  RedisScript create = Script("", kCreateLua);
  RedisScript read = Script("", kReadLua);
  RedisScript append = Script("", kAppendLua);
  RedisScript next = Script("", kNextLua);
  RedisScript discard = Script(kDrop, kDiscardLua);
  RedisScript evict = Script(kDrop, kEvictLua);
  RedisScript push = Script(kUnqueue, kPushLua);
  RedisScript pop = Script(kUnqueue, kPopLua);
  RedisScript remove = Script(kUnqueue, kRemoveLua);
  RedisScript take_expired = Script(kUnqueue, kTakeExpiredLua);
  RedisScript take_model = Script(kUnqueue, kTakeModelLua);
  RedisScript take_all = Script(kUnqueue, kTakeAllLua);
  RedisScript ahead = Script("", kAheadLua);
  RedisScript sizes = Script("", kSizesLua);
  RedisScript finished = Script("", kFinishedLua);
  RedisScript orphans = Script("", kOrphansLua);
  RedisScript heartbeat = Script("", kHeartbeatLua);
  RedisScript served = Script("", kServedLua);
  RedisScript token = Script("", kTokenLua);
  RedisScript acquire_stream = Script(kStreamCount, kAcquireStreamLua);
  RedisScript release_stream = Script("", kReleaseStreamLua);
  RedisScript count_streams = Script(kStreamCount, kCountStreamsLua);
};

const Scripts& Lua() {
  static const Scripts* scripts = new Scripts();
  return *scripts;
}

std::string TimeField(absl::Time t) {
  return t == absl::InfiniteFuture() ? "inf" : absl::StrCat(Micros(t));
}

bool ParseTimeField(absl::string_view field, absl::Time* out) {
  if (field == "inf") {
    *out = absl::InfiniteFuture();
    return true;
  }
  int64_t micros = 0;
  if (!absl::SimpleAtoi(field, &micros)) return false;
  *out = absl::FromUnixMicros(micros);
  return true;
}

int Level(tpdiff::v1::Priority priority) {
  switch (priority) {
    case tpdiff::v1::PRIORITY_INTERACTIVE:
      return 0;
    case tpdiff::v1::PRIORITY_BATCH:
      return 2;
    default:
      return 1;
  }
}

class RedisTenantLimiter final : public TenantLimiter {
 public:
  explicit RedisTenantLimiter(RedisState& state) : state_(state) {}

  absl::StatusOr<bool> TakeToken(const std::string& tenant, double rate, double burst,
                                 absl::Time now) override {
    absl::StatusOr<RedisReply> reply = state_.pool().Eval(
        Lua().token, {},
        {state_.options().key_prefix, tenant, absl::StrFormat("%.17g", rate),
         absl::StrFormat("%.17g", burst), absl::StrCat(Micros(now))});
    if (!reply.ok()) return reply.status();
    return reply->integer == 1;
  }
  absl::StatusOr<bool> AcquireStream(const std::string& tenant, size_t max_streams) override {
    absl::StatusOr<RedisReply> reply = state_.pool().Eval(
        Lua().acquire_stream, {},
        {state_.options().key_prefix, tenant, state_.replica_id(), absl::StrCat(max_streams)});
    if (!reply.ok()) return reply.status();
    return reply->integer == 1;
  }
  void ReleaseStream(const std::string& tenant) override {
    // Unreachable: the count is this replica's and goes with its liveness if it never
    // comes back; a stream count off by one until then is the cost.
    state_.pool()
        .Eval(Lua().release_stream, {}, {state_.options().key_prefix, tenant, state_.replica_id()})
        .IgnoreError();
  }
  size_t OpenStreams(const std::string& tenant) const override {
    absl::StatusOr<RedisReply> reply = state_.pool().Eval(
        Lua().count_streams, {}, {state_.options().key_prefix, tenant, state_.replica_id()});
    return reply.ok() ? static_cast<size_t>(reply->integer) : 0;
  }

 private:
  RedisState& state_;
};

std::string DefaultReplicaId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  absl::BitGen gen;
  return absl::StrFormat("%s-%d-%08x", host[0] != '\0' ? host : "front", getpid(),
                         absl::Uniform<uint32_t>(gen));
}

}  // namespace

std::string EncodeQueuedJob(const QueuedJob& job) {
  // The tenant last: it is the one field whose characters are not restricted.
  return absl::StrCat(job.job_id, "\t", static_cast<int>(job.priority), "\t", job.model, "\t",
                      TimeField(job.enqueued_at), "\t", TimeField(job.deadline), "\t",
                      TimeField(job.queued_at), "\t", TimeField(job.call_deadline), "\t",
                      job.tenant);
}

std::optional<QueuedJob> DecodeQueuedJob(const std::string& encoded) {
  std::vector<std::string> fields = absl::StrSplit(encoded, absl::MaxSplits('\t', 7));
  if (fields.size() != 8) return std::nullopt;
  QueuedJob job;
  int priority = 0;
  job.job_id = fields[0];
  if (!absl::SimpleAtoi(fields[1], &priority) || !tpdiff::v1::Priority_IsValid(priority)) {
    return std::nullopt;
  }
  job.priority = static_cast<tpdiff::v1::Priority>(priority);
  job.model = fields[2];
  if (!ParseTimeField(fields[3], &job.enqueued_at) || !ParseTimeField(fields[4], &job.deadline) ||
      !ParseTimeField(fields[5], &job.queued_at) ||
      !ParseTimeField(fields[6], &job.call_deadline)) {
    return std::nullopt;
  }
  job.tenant = fields[7];
  return job;
}

// ---- RedisState ----

RedisState::RedisState(RedisStateOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  if (options_.replica_id.empty()) options_.replica_id = DefaultReplicaId();
  pool_ = std::make_unique<RedisPool>(options_.address, options_.pool_size);
  subscriber_ = std::make_unique<RedisSubscriber>(
      options_.address,
      std::vector<std::string>{Key(kEventsChannel), Key(kQueuedChannel), Key(kCancelChannel)},
      [this](const std::string& channel, const std::string& payload) {
        OnMessage(channel, payload);
      },
      [this] { OnResubscribed(); });
}

RedisState::~RedisState() { subscriber_->Stop(); }

void RedisState::OnMessage(const std::string& channel, const std::string& payload) {
  absl::MutexLock lock(&mu_);
  if (channel == Key(kEventsChannel)) {
    if (store_ != nullptr) store_->OnJobUpdated(payload);
  } else if (channel == Key(kQueuedChannel)) {
    if (queue_ != nullptr) queue_->OnQueued(payload);
  } else if (channel == Key(kCancelChannel)) {
    if (queue_ != nullptr) queue_->OnCancel(payload);
  }
}

void RedisState::OnResubscribed() {
  absl::MutexLock lock(&mu_);
  if (store_ != nullptr) store_->OnAllUpdated();
}

std::unique_ptr<RedisJobStore> RedisState::MakeJobStore() {
  return std::make_unique<RedisJobStore>(*this);
}

std::unique_ptr<RedisWorkQueue> RedisState::MakeWorkQueue() {
  return std::make_unique<RedisWorkQueue>(*this);
}

std::unique_ptr<TenantLimiter> RedisState::MakeTenantLimiter() {
  return std::make_unique<RedisTenantLimiter>(*this);
}

absl::Status RedisState::Health() const { return pool_->Ping(); }

// ---- RedisJobStore ----

RedisJobStore::RedisJobStore(RedisState& state) : state_(state) {
  absl::MutexLock lock(&state_.mu_);
  state_.store_ = this;
}

RedisJobStore::~RedisJobStore() {
  absl::MutexLock lock(&state_.mu_);
  if (state_.store_ == this) state_.store_ = nullptr;
}

absl::Status RedisJobStore::Create(Job job, const std::string& tenant) {
  job.set_state(tpdiff::v1::JOB_STATE_QUEUED);
  absl::StatusOr<RedisReply> reply = state_.pool().Eval(
      Lua().create, {},
      {state_.options().key_prefix, job.job_id(), tenant, job.request_id(),
       job.SerializeAsString()});
  if (!reply.ok()) return reply.status();
  if (reply->integer == 1) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.job_id(), " exists"));
  }
  if (reply->integer == 2) return RequestIdTaken(job.request_id());
  absl::MutexLock lock(&mu_);
  if (cache_.size() >= kMaxCachedJobs) cache_.clear();
  cache_[job.job_id()] = CachedJob{std::move(job), 0};  // its Queued event follows
  return absl::OkStatus();
}

void RedisJobStore::Discard(const std::string& job_id) {
  {
    absl::MutexLock lock(&mu_);
    cache_.erase(job_id);
  }
  state_.pool().Eval(Lua().discard, {}, {state_.options().key_prefix, job_id}).IgnoreError();
}

std::optional<std::string> RedisJobStore::FindByRequestId(const std::string& tenant,
                                                          const std::string& request_id) const {
  absl::StatusOr<RedisReply> reply =
      state_.pool().Command({"GET", state_.Key(absl::StrCat("rid:", tenant, "\n", request_id))});
  if (!reply.ok() || reply->nil()) return std::nullopt;
  return reply->str;
}

absl::StatusOr<std::string> RedisJobStore::Owner(const std::string& job_id) const {
  absl::StatusOr<RedisReply> reply =
      state_.pool().Command({"HGET", state_.Key(absl::StrCat("job:", job_id)), "tenant"});
  if (!reply.ok()) return reply.status();
  if (reply->nil()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return reply->str;
}

absl::StatusOr<int64_t> RedisJobStore::Append(const std::string& job_id, JobEvent event) {
  const std::string& prefix = state_.options().key_prefix;
  // Compare-and-set on the log's length. The job and length this front wrote last are kept,
  // so an append is one round trip; a conflict (another front appended) re-reads them.
  std::optional<CachedJob> cached;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(job_id);
    if (it != cache_.end()) cached = it->second;
  }
  auto forget = [&] {
    absl::MutexLock lock(&mu_);
    cache_.erase(job_id);
  };
  for (int attempt = 0; attempt < 16; ++attempt) {
    if (!cached.has_value()) {
      absl::StatusOr<RedisReply> read = state_.pool().Eval(Lua().read, {}, {prefix, job_id});
      if (!read.ok()) return read.status();
      if (read->nil()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
      if (read->elements.size() != 3) return absl::InternalError("state: malformed job record");
      if (read->elements[1].str == "1") {
        return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " already ended"));
      }
      cached.emplace();
      if (!cached->job.ParseFromString(read->elements[0].str)) {
        return absl::InternalError(absl::StrCat("state: job ", job_id, " is not a Job"));
      }
      cached->length = read->elements[2].integer;
    }
    Job job = cached->job;
    const int64_t length = cached->length;
    const absl::Time now = state_.clock().Now();
    event.set_job_id(job_id);
    event.set_seq(length + 1);
    *event.mutable_timestamp() = common::ToProtoTimestamp(now);
    ApplyEvent(event, &job);
    const bool terminal = IsTerminal(event);
    absl::StatusOr<RedisReply> appended = state_.pool().Eval(
        Lua().append, {},
        {prefix, job_id, absl::StrCat(length), event.SerializeAsString(), job.SerializeAsString(),
         terminal ? "1" : "0", absl::StrCat(Micros(now))});
    if (!appended.ok()) {
      forget();
      return appended.status();
    }
    switch (appended->integer) {
      case -1:
        forget();
        return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
      case -2:
        forget();
        return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " already ended"));
      case -3:
        cached.reset();
        continue;
      default: {
        absl::MutexLock lock(&mu_);
        if (terminal) {
          cache_.erase(job_id);
        } else {
          // Jobs that moved to another front stay until the bound clears them all.
          if (cache_.size() >= kMaxCachedJobs) cache_.clear();
          cache_[job_id] = CachedJob{std::move(job), length + 1};
        }
        return appended->integer;
      }
    }
  }
  forget();
  return absl::AbortedError(absl::StrCat("job ", job_id, ": appends kept conflicting"));
}

absl::StatusOr<Job> RedisJobStore::Get(const std::string& job_id) const {
  absl::StatusOr<RedisReply> reply =
      state_.pool().Command({"HGET", state_.Key(absl::StrCat("job:", job_id)), "job"});
  if (!reply.ok()) return reply.status();
  if (reply->nil()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  Job job;
  if (!job.ParseFromString(reply->str)) {
    return absl::InternalError(absl::StrCat("state: job ", job_id, " is not a Job"));
  }
  return job;
}

absl::StatusOr<EventRead> RedisJobStore::Next(const std::string& job_id, int64_t after_seq) const {
  absl::StatusOr<RedisReply> reply = state_.pool().Eval(
      Lua().next, {},
      {state_.options().key_prefix, job_id, absl::StrCat(std::max<int64_t>(after_seq, 0))});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty() || reply->elements[0].integer < 0) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  EventRead read;
  if (reply->elements[0].integer == 1 && reply->elements.size() == 2) {
    auto event = std::make_shared<JobEvent>();
    if (!event->ParseFromString(reply->elements[1].str)) {
      return absl::InternalError(absl::StrCat("state: an event of job ", job_id, " is corrupt"));
    }
    read.event = std::move(event);
  } else {
    read.finished = reply->elements.size() == 2 && reply->elements[1].str == "1";
  }
  return read;
}

absl::Status RedisJobStore::Watch(const std::string& job_id, std::shared_ptr<JobWatcher> watcher) {
  absl::StatusOr<RedisReply> exists =
      state_.pool().Command({"EXISTS", state_.Key(absl::StrCat("job:", job_id))});
  if (!exists.ok()) return exists.status();
  if (exists->integer == 0) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  absl::MutexLock lock(&mu_);
  watchers_[job_id].push_back(std::move(watcher));
  return absl::OkStatus();
}

void RedisJobStore::Unwatch(const std::string& job_id, const JobWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(job_id);
  if (it == watchers_.end()) return;
  auto& list = it->second;
  list.erase(std::remove_if(list.begin(), list.end(),
                            [&](const auto& w) { return w.get() == watcher; }),
             list.end());
  if (list.empty()) watchers_.erase(it);
}

void RedisJobStore::Notify(const std::string& job_id) {
  std::vector<std::shared_ptr<JobWatcher>> watchers;
  {
    absl::MutexLock lock(&mu_);
    auto it = watchers_.find(job_id);
    if (it == watchers_.end()) return;
    watchers = it->second;
  }
  for (const auto& watcher : watchers) watcher->OnJobUpdated();
}

void RedisJobStore::OnJobUpdated(const std::string& job_id) { Notify(job_id); }

void RedisJobStore::OnAllUpdated() {
  std::vector<std::shared_ptr<JobWatcher>> watchers;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, list] : watchers_) watchers.insert(watchers.end(), list.begin(), list.end());
  }
  for (const auto& watcher : watchers) watcher->OnJobUpdated();
}

void RedisJobStore::Evict() {
  const RedisStateOptions& options = state_.options();
  std::vector<std::string> args = {options.key_prefix, absl::StrCat(Micros(state_.clock().Now())),
                                   absl::StrCat(absl::ToInt64Microseconds(options.job_ttl)),
                                   absl::StrCat(options.job_store_bytes)};
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, list] : watchers_) args.push_back(id);
  }
  absl::StatusOr<RedisReply> evicted = state_.pool().Eval(Lua().evict, {}, args);
  if (!evicted.ok()) return;
  for (const RedisReply& id : evicted->elements) Notify(id.str);
}

size_t RedisJobStore::Counter(const std::string& name) const {
  absl::StatusOr<RedisReply> reply = state_.pool().Command({"GET", state_.Key(name)});
  int64_t value = 0;
  if (!reply.ok() || reply->nil() || !absl::SimpleAtoi(reply->str, &value)) return 0;
  return static_cast<size_t>(std::max<int64_t>(value, 0));
}

size_t RedisJobStore::bytes() const { return Counter("bytes"); }

size_t RedisJobStore::job_count() const { return Counter("jobs"); }

// ---- RedisWorkQueue ----

RedisWorkQueue::RedisWorkQueue(RedisState& state) : state_(state) {
  absl::MutexLock lock(&state_.mu_);
  state_.queue_ = this;
}

RedisWorkQueue::~RedisWorkQueue() {
  absl::MutexLock lock(&state_.mu_);
  if (state_.queue_ == this) state_.queue_ = nullptr;
}

absl::Status RedisWorkQueue::PushScript(const QueuedJob& job, size_t max_tenant_queued,
                                        bool front) {
  const RedisStateOptions& options = state_.options();
  absl::StatusOr<RedisReply> reply = state_.pool().Eval(
      Lua().push, {},
      {options.key_prefix, job.job_id, absl::StrCat(Level(job.priority)), job.model, job.tenant,
       EncodeQueuedJob(job), absl::StrCat(Micros(job.enqueued_at)),
       job.deadline == absl::InfiniteFuture() ? "" : absl::StrCat(Micros(job.deadline)),
       absl::StrCat(max_tenant_queued), absl::StrCat(options.queue_capacity), front ? "1" : "0"});
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 2) return absl::InternalError("state: malformed push reply");
  switch (reply->elements[0].integer) {
    case 1:
      return CheckTenantQueuedJobs(job.tenant, static_cast<size_t>(reply->elements[1].integer),
                                   max_tenant_queued);
    case 2:
      return QueueFullError(job.priority, options.queue_capacity);
    default:
      return absl::OkStatus();
  }
}

absl::Status RedisWorkQueue::Push(QueuedJob job, size_t max_tenant_queued) {
  return PushScript(job, max_tenant_queued, /*front=*/false);
}

void RedisWorkQueue::PushFront(QueuedJob job) {
  if (PushScript(job, 0, /*front=*/true).ok()) return;
  absl::MutexLock lock(&mu_);
  retry_front_.push_back(std::move(job));
}

std::vector<QueuedJob> RedisWorkQueue::DecodeList(const absl::StatusOr<RedisReply>& reply) const {
  std::vector<QueuedJob> jobs;
  if (!reply.ok()) return jobs;
  for (const RedisReply& element : reply->elements) {
    if (std::optional<QueuedJob> job = DecodeQueuedJob(element.str)) jobs.push_back(*std::move(job));
  }
  return jobs;
}

std::optional<QueuedJob> RedisWorkQueue::Pop(absl::Time now, const std::set<std::string>& models) {
  if (models.empty()) return std::nullopt;
  const RedisStateOptions& options = state_.options();
  std::vector<std::string> args = {options.key_prefix, absl::StrCat(Micros(now)),
                                   absl::StrCat(absl::ToInt64Microseconds(options.aging_interval)),
                                   state_.replica_id()};
  args.insert(args.end(), models.begin(), models.end());
  absl::StatusOr<RedisReply> reply = state_.pool().Eval(Lua().pop, {}, args);
  if (!reply.ok() || reply->nil()) return std::nullopt;
  return DecodeQueuedJob(reply->str);
}

bool RedisWorkQueue::Remove(const std::string& job_id) {
  absl::StatusOr<RedisReply> reply =
      state_.pool().Eval(Lua().remove, {}, {state_.options().key_prefix, job_id});
  return reply.ok() && !reply->nil();
}

std::vector<QueuedJob> RedisWorkQueue::TakeExpired(absl::Time now) {
  return DecodeList(state_.pool().Eval(Lua().take_expired, {},
                                       {state_.options().key_prefix, absl::StrCat(Micros(now))}));
}

std::vector<QueuedJob> RedisWorkQueue::TakeModel(const std::string& model, absl::Time enqueued_by) {
  return DecodeList(state_.pool().Eval(
      Lua().take_model, {},
      {state_.options().key_prefix, model, absl::StrCat(Micros(enqueued_by))}));
}

std::vector<std::string> RedisWorkQueue::Models() const {
  std::vector<std::string> models;
  absl::StatusOr<RedisReply> reply = state_.pool().Command({"HKEYS", state_.Key("qmodels")});
  if (!reply.ok()) return models;
  for (const RedisReply& element : reply->elements) models.push_back(element.str);
  return models;
}

size_t RedisWorkQueue::Ahead(tpdiff::v1::Priority priority, absl::Time now) {
  absl::StatusOr<RedisReply> reply = state_.pool().Eval(
      Lua().ahead, {},
      {state_.options().key_prefix, absl::StrCat(Level(priority)), absl::StrCat(Micros(now)),
       absl::StrCat(absl::ToInt64Microseconds(state_.options().aging_interval))});
  return reply.ok() ? static_cast<size_t>(reply->integer) : 0;
}

std::vector<size_t> RedisWorkQueue::Sizes() const {
  absl::StatusOr<RedisReply> reply =
      state_.pool().Eval(Lua().sizes, {}, {state_.options().key_prefix});
  std::vector<size_t> sizes(3, 0);
  if (!reply.ok() || reply->elements.size() != 3) return sizes;
  for (int i = 0; i < 3; ++i) sizes[i] = static_cast<size_t>(reply->elements[i].integer);
  return sizes;
}

size_t RedisWorkQueue::Size(tpdiff::v1::Priority priority) const {
  return Sizes()[Level(priority)];
}

size_t RedisWorkQueue::TotalSize() const {
  std::vector<size_t> sizes = Sizes();
  return sizes[0] + sizes[1] + sizes[2];
}

bool RedisWorkQueue::Full(tpdiff::v1::Priority priority) const {
  return Size(priority) >= state_.options().queue_capacity;
}

std::vector<QueuedJob> RedisWorkQueue::TakeAll() {
  return DecodeList(state_.pool().Eval(Lua().take_all, {}, {state_.options().key_prefix}));
}

absl::Status RedisWorkQueue::Health() const { return state_.Health(); }

void RedisWorkQueue::Finished(const std::string& job_id) {
  absl::Status done =
      state_.pool()
          .Eval(Lua().finished, {}, {state_.options().key_prefix, job_id, state_.replica_id()})
          .status();
  if (done.ok()) return;
  absl::MutexLock lock(&mu_);
  retry_finished_.push_back(job_id);
}

std::vector<QueuedJob> RedisWorkQueue::TakeOrphans(absl::Time now) {
  return DecodeList(state_.pool().Eval(Lua().orphans, {},
                                       {state_.options().key_prefix, state_.replica_id()}));
}

void RedisWorkQueue::Heartbeat(absl::Time now, const std::vector<std::string>& served_models) {
  std::vector<std::string> args = {
      state_.options().key_prefix, state_.replica_id(),
      absl::StrCat(absl::ToInt64Milliseconds(state_.options().liveness_ttl))};
  args.insert(args.end(), served_models.begin(), served_models.end());
  if (!state_.pool().Eval(Lua().heartbeat, {}, args).ok()) return;
  std::vector<QueuedJob> fronts;
  std::vector<std::string> finished;
  {
    absl::MutexLock lock(&mu_);
    fronts.swap(retry_front_);
    finished.swap(retry_finished_);
  }
  for (QueuedJob& job : fronts) PushFront(std::move(job));
  for (const std::string& id : finished) Finished(id);
}

bool RedisWorkQueue::ServedElsewhere(const std::string& model) {
  absl::StatusOr<RedisReply> reply = state_.pool().Eval(
      Lua().served, {}, {state_.options().key_prefix, model, state_.replica_id()});
  // Unknown counts as served: failing jobs for a model because Redis blinked would be worse
  // than letting them wait one more tick.
  return !reply.ok() || reply->integer == 1;
}

void RedisWorkQueue::SetListener(WorkQueueListener* listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = listener;
}

void RedisWorkQueue::OnQueued(const std::string& model) {
  absl::MutexLock lock(&listener_mu_);
  if (listener_ != nullptr) listener_->OnJobQueued(model);
}

void RedisWorkQueue::OnCancel(const std::string& payload) {
  const size_t newline = payload.find('\n');
  const std::string job_id = payload.substr(0, newline);
  const std::string reason = newline == std::string::npos ? "" : payload.substr(newline + 1);
  absl::MutexLock lock(&listener_mu_);
  if (listener_ != nullptr) listener_->OnCancelRequested(job_id, reason);
}

void RedisWorkQueue::RequestCancel(const std::string& job_id, const std::string& reason) {
  // Lost when Redis is unreachable: the job's log has ended, so the worker's next event
  // fails to append and its replica stops it then.
  state_.pool()
      .Command({"PUBLISH", state_.Key(kCancelChannel), absl::StrCat(job_id, "\n", reason)})
      .IgnoreError();
}

}  // namespace tpdiff::server
