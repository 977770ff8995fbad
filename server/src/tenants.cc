#include "tpdiff/server/tenants.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tpdiff/common/files.h"

namespace tpdiff::server {
namespace {

using nlohmann::json;

absl::Status Invalid(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tenants file: ", where, ": ", what));
}

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

// Reads an optional non-negative number field into `out`.
template <typename T>
absl::Status ReadLimit(const json& tenant, const std::string& where, const char* field, T* out) {
  auto it = tenant.find(field);
  if (it == tenant.end()) return absl::OkStatus();
  if (!it->is_number() || it->get<double>() < 0) {
    return Invalid(absl::StrCat(where, ".", field), "must be a non-negative number");
  }
  *out = it->get<T>();
  return absl::OkStatus();
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  std::string hex;
  for (unsigned char byte : digest) absl::StrAppendFormat(&hex, "%02x", byte);
  return hex;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::StatusOr<std::vector<TenantConfig>> ParseTenants(absl::string_view text) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid("JSON", "cannot parse");
  if (!root.is_object() || !root.contains("tenants") || !root["tenants"].is_array()) {
    return Invalid("tenants", "an array of tenants is required");
  }
  std::vector<TenantConfig> out;
  std::set<std::string> names, hashes;
  for (size_t i = 0; i < root["tenants"].size(); ++i) {
    const json& t = root["tenants"][i];
    const std::string where = absl::StrCat("tenants[", i, "]");
    if (!t.is_object()) return Invalid(where, "must be an object");
    TenantConfig config;
    if (!t.contains("name") || !t["name"].is_string() || t["name"].get<std::string>().empty()) {
      return Invalid(absl::StrCat(where, ".name"), "a non-empty string is required");
    }
    config.name = t["name"].get<std::string>();
    if (!names.insert(config.name).second) {
      return Invalid(absl::StrCat(where, ".name"), absl::StrCat("\"", config.name, "\" repeats"));
    }
    if (!t.contains("api_key_sha256") || !t["api_key_sha256"].is_array() ||
        t["api_key_sha256"].empty()) {
      return Invalid(absl::StrCat(where, ".api_key_sha256"),
                     "an array of at least one SHA-256 hash is required");
    }
    for (const json& h : t["api_key_sha256"]) {
      std::string hash = h.is_string() ? absl::AsciiStrToLower(h.get<std::string>()) : "";
      if (!IsSha256Hex(hash)) {
        return Invalid(absl::StrCat(where, ".api_key_sha256"),
                       "each entry must be 64 hex digits (sha256sum of the key)");
      }
      if (!hashes.insert(hash).second) {
        return Invalid(absl::StrCat(where, ".api_key_sha256"), "a key hash is listed twice");
      }
      config.key_sha256.push_back(std::move(hash));
    }
    TenantLimits& l = config.limits;
    for (absl::Status s : {ReadLimit(t, where, "max_queued_jobs", &l.max_queued_jobs),
                           ReadLimit(t, where, "requests_per_second", &l.requests_per_second),
                           ReadLimit(t, where, "burst", &l.burst),
                           ReadLimit(t, where, "max_streams", &l.max_streams)}) {
      if (!s.ok()) return s;
    }
    if (l.requests_per_second > 0 && l.burst < 1) {
      return Invalid(absl::StrCat(where, ".burst"), "must be at least 1 with a request rate");
    }
    out.push_back(std::move(config));
  }
  return out;
}

absl::StatusOr<std::vector<TenantConfig>> ReadTenantsFile(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFileContents(path, "--tenants-file");
  if (!text.ok()) return text.status();
  return ParseTenants(*text);
}

TokenBucket::TokenBucket(double rate, double burst, absl::Time now)
    : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}

bool TokenBucket::TryTake(absl::Time now) {
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * absl::ToDoubleSeconds(now - last_));
    last_ = now;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

absl::StatusOr<bool> InMemoryTenantLimiter::TakeToken(const std::string& tenant, double rate,
                                                      double burst, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(tenant);
  if (it == buckets_.end()) it = buckets_.emplace(tenant, TokenBucket(rate, burst, now)).first;
  return it->second.TryTake(now);
}

absl::StatusOr<bool> InMemoryTenantLimiter::AcquireStream(const std::string& tenant,
                                                          size_t max_streams) {
  absl::MutexLock lock(&mu_);
  size_t& streams = streams_[tenant];
  if (max_streams > 0 && streams >= max_streams) return false;
  ++streams;
  return true;
}

void InMemoryTenantLimiter::ReleaseStream(const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(tenant);
  if (it != streams_.end() && it->second > 0) --it->second;
}

size_t InMemoryTenantLimiter::OpenStreams(const std::string& tenant) const {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(tenant);
  return it == streams_.end() ? 0 : it->second;
}

Tenants::Tenants(std::vector<TenantConfig> tenants, const Clock& clock,
                 std::unique_ptr<TenantLimiter> limiter)
    : clock_(clock),
      limiter_(limiter != nullptr ? std::move(limiter)
                                  : std::make_unique<InMemoryTenantLimiter>()) {
  for (TenantConfig& t : tenants) {
    for (const std::string& hash : t.key_sha256) tenant_by_hash_[hash] = t.name;
    limits_.emplace(t.name, t.limits);
  }
}

absl::StatusOr<Caller> Tenants::Authenticate(absl::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing API key: send metadata \"authorization: Bearer <key>\"");
  }
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWithIgnoreCase(authorization, kBearer)) {
    return absl::UnauthenticatedError(
        "malformed authorization metadata: expected \"Bearer <key>\"");
  }
  const absl::string_view key = absl::StripAsciiWhitespace(authorization.substr(kBearer.size()));
  auto it = key.empty() ? tenant_by_hash_.end() : tenant_by_hash_.find(Sha256Hex(key));
  if (it == tenant_by_hash_.end()) return absl::UnauthenticatedError("unknown API key");
  return Caller{it->second, limits_.at(it->second)};
}

absl::Status Tenants::AdmitRequest(const Caller& caller) {
  auto it = limits_.find(caller.tenant);
  if (it == limits_.end() || it->second.requests_per_second <= 0) return absl::OkStatus();
  const TenantLimits& limits = it->second;
  absl::StatusOr<bool> taken =
      limiter_->TakeToken(caller.tenant, limits.requests_per_second, limits.burst, clock_.Now());
  if (!taken.ok()) return taken.status();
  if (*taken) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "rate limit: tenant \"%s\" exceeds requests_per_second %g (burst %g); retry later",
      caller.tenant, limits.requests_per_second, limits.burst));
}

absl::Status Tenants::AcquireStream(const Caller& caller) {
  auto it = limits_.find(caller.tenant);
  if (it == limits_.end()) return absl::OkStatus();
  const size_t max_streams = it->second.max_streams;
  absl::StatusOr<bool> acquired = limiter_->AcquireStream(caller.tenant, max_streams);
  if (!acquired.ok()) return acquired.status();
  if (*acquired) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "stream limit: tenant \"%s\" already has max_streams %d open Generate/WatchJob streams",
      caller.tenant, max_streams));
}

void Tenants::ReleaseStream(const Caller& caller) {
  if (limits_.count(caller.tenant) > 0) limiter_->ReleaseStream(caller.tenant);
}

size_t Tenants::open_streams(const std::string& tenant) const {
  return limiter_->OpenStreams(tenant);
}

}  // namespace tpdiff::server
