// EtcdClient: JSON requests to etcd v3's HTTP/JSON gateway (POST /v3/...), with endpoint failover,
// an overall request timeout and password authentication. It knows nothing about Patroni's keys;
// EtcdDcs builds on it.
//
// Failover: endpoints are tried in order, starting with the last one that answered. An endpoint is
// skipped when it cannot be reached in time, or answers 5xx (etcd's "no leader", "request timed
// out", ...). A call returns within the request timeout; when no endpoint answered, the error is
// kDcsUnavailable. Each attempt gets a fair share of the remaining time, so one hung endpoint
// cannot eat the whole budget when others are left.
//
// Authentication: with a username, the client authenticates (POST /v3/auth/authenticate) before
// its first request and sends the token in the Authorization header; a request rejected with
// "invalid auth token" (expired token, etcd restarted) re-authenticates once and is retried.
// Wrong credentials give kConfig with etcd's reason.
//
// Errors etcd answers (4xx) are returned with a code mapped from the gRPC code: NotFound ->
// kNotFound, InvalidArgument/FailedPrecondition -> kInvalidArgument, PermissionDenied and auth
// failures -> kConfig, anything else -> kInternal. Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/result.h"

namespace pgf {

class HttpConnection;

struct EtcdClientOptions {
  std::vector<std::string> endpoints;  // "host:port"
  std::string protocol = "http";       // only "http" is supported for now
  std::string username;                // empty: no authentication
  std::string password;
  Millis request_timeout{10000};
};

class EtcdClient {
 public:
  // kInvalidArgument for an empty or malformed endpoint list, kUnsupported for https.
  static Result<std::unique_ptr<EtcdClient>> create(EtcdClientOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // POSTs `body` to `path` ("/v3/kv/range") and returns etcd's JSON answer.
  Result<nlohmann::json> call(std::string_view path, const nlohmann::json& body);

  void setRequestTimeout(Millis timeout);
  Millis requestTimeout() const;

  // For long-lived streams (the watch): the endpoints in the order a request would try them, and
  // the Authorization token ("" without authentication; authenticates if there is none yet,
  // spending at most `timeout`).
  std::vector<std::string> endpointsInOrder() const;
  Result<std::string> token(Millis timeout);
  // Forgets `stale` so the next token() authenticates again.
  void invalidateToken(const std::string& stale);
  // Remembers `endpoint` as the first one to try.
  void markGood(const std::string& endpoint);
  bool authEnabled() const { return !options_.username.empty(); }

 private:
  struct Answer {
    int status = 0;
    nlohmann::json body;
  };
  using Clock = std::chrono::steady_clock;

  explicit EtcdClient(EtcdClientOptions options);
  // One request across the endpoints until one answers (any status < 500), or the deadline.
  Result<Answer> exchange(std::string_view path, const std::string& body, const std::string& token,
                          Clock::time_point deadline);
  Result<std::string> authenticate(Clock::time_point deadline);
  Result<std::string> tokenUntil(Clock::time_point deadline);
  // An idle pooled connection to `endpoint`, or nullptr.
  std::unique_ptr<HttpConnection> borrow(const std::string& endpoint);
  void giveBack(const std::string& endpoint, std::unique_ptr<HttpConnection> connection);

  const EtcdClientOptions options_;
  mutable std::mutex mu_;  // guards everything below
  Millis request_timeout_;
  size_t preferred_ = 0;  // index of the endpoint that answered last
  std::string token_;
  std::vector<std::pair<std::string, std::unique_ptr<HttpConnection>>> idle_;
};

// "host:port" or "[v6addr]:port" -> {host, port}; kInvalidArgument when malformed.
Result<std::pair<std::string, int>> splitEtcdEndpoint(const std::string& endpoint);

// The gRPC status code and message of an etcd error answer ({"error": ..., "code": N}), if it is
// one.
std::optional<std::pair<int, std::string>> etcdErrorOf(const nlohmann::json& answer);

// Field readers that never throw: a missing field or one of another type gives the fallback.
std::string jsonString(const nlohmann::json& obj, const char* key);
bool jsonBool(const nlohmann::json& obj, const char* key);

// Reads an int64 that the gateway renders as a string ("123") or a number; `fallback` if absent.
int64_t jsonInt64(const nlohmann::json& obj, const char* key, int64_t fallback = 0);

}  // namespace pgf
