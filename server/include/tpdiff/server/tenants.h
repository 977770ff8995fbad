#ifndef TPDIFF_SERVER_TENANTS_H_
#define TPDIFF_SERVER_TENANTS_H_

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/server/clock.h"

namespace tpdiff::server {

// Per-tenant bounds. Zero means "no limit" for every field.
struct TenantLimits {
  size_t max_queued_jobs = 16;       // jobs of the tenant waiting for a worker
  double requests_per_second = 10;   // token bucket refill rate, over every API call
  double burst = 20;                 // token bucket size
  size_t max_streams = 8;            // open Generate + WatchJob streams
};

// One tenant of --tenants-file. Keys are stored only as SHA-256 hashes (lower-case hex).
struct TenantConfig {
  std::string name;
  std::vector<std::string> key_sha256;
  TenantLimits limits;
};

// Parses the tenants file (JSON):
//   {"tenants": [{"name": "acme", "api_key_sha256": ["<64 hex>", ...],
//                 "max_queued_jobs": 16, "requests_per_second": 10, "burst": 20,
//                 "max_streams": 8}]}
// Limits are optional (defaults above). Errors are INVALID_ARGUMENT naming the tenant and
// field; a hash listed twice (for one or two tenants) is an error.
absl::StatusOr<std::vector<TenantConfig>> ParseTenants(absl::string_view json);
absl::StatusOr<std::vector<TenantConfig>> ReadTenantsFile(const std::string& path);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);
// Compares in time that depends only on the lengths, for secrets.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// A token bucket on an explicit clock: `rate` tokens per second up to `burst`; starts full.
// Not thread-safe (Tenants guards it).
class TokenBucket {
 public:
  TokenBucket(double rate, double burst, absl::Time now);
  // Takes one token if there is one.
  bool TryTake(absl::Time now);

 private:
  double rate_;
  double burst_;
  double tokens_;
  absl::Time last_;
};

// The per-tenant counters every front must agree on: the request-rate token bucket and the
// open streams. InMemoryTenantLimiter counts in this process; RedisTenantLimiter
// (redis_state.h) counts for all fronts sharing a Redis, each check-and-count one atomic step.
//
// Thread safety: all methods are thread-safe; no callbacks.
class TenantLimiter {
 public:
  virtual ~TenantLimiter() = default;
  // Takes one token from the tenant's bucket (`rate` per second up to `burst`, full at first
  // use); false when it is empty. UNAVAILABLE when a shared backend cannot be reached.
  virtual absl::StatusOr<bool> TakeToken(const std::string& tenant, double rate, double burst,
                                         absl::Time now) = 0;
  // Counts one more open stream of the tenant unless `max_streams` are open (false then).
  virtual absl::StatusOr<bool> AcquireStream(const std::string& tenant, size_t max_streams) = 0;
  virtual void ReleaseStream(const std::string& tenant) = 0;
  virtual size_t OpenStreams(const std::string& tenant) const = 0;
};

class InMemoryTenantLimiter final : public TenantLimiter {
 public:
  absl::StatusOr<bool> TakeToken(const std::string& tenant, double rate, double burst,
                                 absl::Time now) override;
  absl::StatusOr<bool> AcquireStream(const std::string& tenant, size_t max_streams) override;
  void ReleaseStream(const std::string& tenant) override;
  size_t OpenStreams(const std::string& tenant) const override;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, TokenBucket> buckets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, size_t> streams_ ABSL_GUARDED_BY(mu_);
};

// The authenticated caller of an API call: its tenant (empty when auth is off).
struct Caller {
  std::string tenant;
  TenantLimits limits;  // all zero (unlimited) when auth is off
};

// API keys -> tenants, and each tenant's limits applied through a TenantLimiter.
//
// Ownership: borrows `clock` (must outlive it); owns the limiter (null: in memory). Thread safety: all methods are thread-safe.
// Keys are never stored or logged: a presented key is hashed and the hash looked up (the
// map lookup's timing can reveal at most a hash prefix, never the key).
class Tenants {
 public:
  Tenants(std::vector<TenantConfig> tenants, const Clock& clock,
          std::unique_ptr<TenantLimiter> limiter = nullptr);

  // `authorization` is the metadata value ("Bearer <key>"). UNAUTHENTICATED for a missing,
  // malformed or unknown key (the message never echoes the key).
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization) const;
  // Takes one token from the tenant's bucket; RESOURCE_EXHAUSTED naming the limit if empty,
  // UNAVAILABLE when a shared limiter cannot be reached.
  absl::Status AdmitRequest(const Caller& caller);
  // Reserves a stream slot; RESOURCE_EXHAUSTED naming max_streams when all are open.
  // Every OK must be paired with one ReleaseStream.
  absl::Status AcquireStream(const Caller& caller);
  void ReleaseStream(const Caller& caller);
  size_t open_streams(const std::string& tenant) const;

 private:
  const Clock& clock_;
  // Immutable after construction.
  std::map<std::string, std::string> tenant_by_hash_;
  std::map<std::string, TenantLimits> limits_;
  std::unique_ptr<TenantLimiter> limiter_;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_TENANTS_H_
