#include "dcs/etcd/etcd_client.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/http_client.h"

namespace pgf {
namespace {

// The least time an attempt on one endpoint gets while others are still left to try: enough for a
// healthy etcd on a loaded machine, short enough to leave time for the next endpoint.
constexpr Millis kMinAttempt{500};

// gRPC status codes etcd reports in its error answers.
constexpr int kGrpcInvalidArgument = 3;
constexpr int kGrpcNotFound = 5;
constexpr int kGrpcAlreadyExists = 6;
constexpr int kGrpcPermissionDenied = 7;
constexpr int kGrpcFailedPrecondition = 9;
constexpr int kGrpcOutOfRange = 11;
constexpr int kGrpcUnauthenticated = 16;

}  // namespace

Result<std::pair<std::string, int>> splitEtcdEndpoint(const std::string& endpoint) {
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size())
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("etcd endpoint '{}' is not host:port", endpoint));
  std::string host = endpoint.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = 0;
  for (char c : endpoint.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535)
      return makeError(ErrorCode::kInvalidArgument,
                       fmt::format("etcd endpoint '{}' has an invalid port", endpoint));
    port = port * 10 + (c - '0');
  }
  if (port <= 0 || port > 65535)
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("etcd endpoint '{}' has an invalid port", endpoint));
  return std::make_pair(host, port);
}

namespace {

Error mapEtcdError(int code, const std::string& message, std::string_view path) {
  std::string text = fmt::format("etcd {}: {}", path, message);
  switch (code) {
    case kGrpcNotFound:
      return makeError(ErrorCode::kNotFound, text);
    case kGrpcAlreadyExists:
      return makeError(ErrorCode::kAlreadyExists, text);
    case kGrpcPermissionDenied:
    case kGrpcUnauthenticated:
      return makeError(ErrorCode::kConfig, text);
    case kGrpcInvalidArgument:
      if (message.find("user name is empty") != std::string::npos)
        return makeError(ErrorCode::kConfig,
                         text +
                             " (etcd has authentication enabled: configure a username and "
                             "password)");
      return makeError(ErrorCode::kInvalidArgument, text);
    case kGrpcFailedPrecondition:
    case kGrpcOutOfRange:
      return makeError(ErrorCode::kInvalidArgument, text);
    default:
      return makeError(ErrorCode::kInternal, text);
  }
}

// How fast a request on a reused connection must fail for the failure to be blamed on the
// connection (closed by the server while idle) rather than on the endpoint.
constexpr Millis kStaleConnectionFailure{100};

struct PostResult {
  bool complete = false;  // a whole answer arrived
  int status = 0;
  std::string text;
  nlohmann::json body;  // discarded when `text` is not JSON
  std::string error;    // why the answer is not complete
};

// POSTs a JSON body and reads the whole answer before `deadline`. etcd's gateway ends error
// answers with HTTP trailers in a chunked body; the HTTP client accepts them, so such an answer is
// complete and its connection reusable like any other.
PostResult postJson(HttpConnection& connection, std::string_view path, const HttpHeaders& headers,
                    const std::string& body, MonoTime deadline) {
  PostResult out;
  auto res = connection.request("POST", path, headers, body, deadline);
  if (!res.ok()) {
    out.error = res.error().message;
    return out;
  }
  out.complete = true;
  out.status = res->status;
  out.text = std::move(res->body);
  out.body = nlohmann::json::parse(out.text, nullptr, /*allow_exceptions=*/false);
  return out;
}

std::string snippet(const std::string& body) {
  return body.size() > 200 ? body.substr(0, 200) + "..." : body;
}

}  // namespace

std::optional<std::pair<int, std::string>> etcdErrorOf(const nlohmann::json& answer) {
  if (!answer.is_object() || !answer.contains("error"))
    return std::nullopt;
  // Some answers (lease grant) carry an "error" string field that is empty on success.
  if (answer["error"].is_string() && answer["error"].get_ref<const std::string&>().empty())
    return std::nullopt;
  int code = 2;  // gRPC Unknown
  if (answer.contains("code") && answer["code"].is_number_integer())
    code = answer["code"].get<int>();
  std::string message;
  if (answer.contains("message") && answer["message"].is_string())
    message = answer["message"].get<std::string>();
  else if (answer["error"].is_string())
    message = answer["error"].get<std::string>();
  else
    message = answer["error"].dump();
  return std::make_pair(code, message);
}

std::string jsonString(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object())
    return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool jsonBool(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object())
    return false;
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}

int64_t jsonInt64(const nlohmann::json& obj, const char* key, int64_t fallback) {
  if (!obj.is_object())
    return fallback;
  auto it = obj.find(key);
  if (it == obj.end())
    return fallback;
  if (it->is_number_integer())
    return it->get<int64_t>();
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    bool neg = false;
    size_t i = 0;
    if (!s.empty() && s[0] == '-') {
      neg = true;
      i = 1;
    }
    if (i == s.size())
      return fallback;
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9')
        return fallback;
      v = v * 10 + (s[i] - '0');
    }
    return neg ? -v : v;
  }
  return fallback;
}

Result<std::unique_ptr<EtcdClient>> EtcdClient::create(EtcdClientOptions options) {
  if (options.protocol == "https")
    return makeError(ErrorCode::kUnsupported,
                     "etcd protocol https is not supported yet; use http on a trusted network");
  if (options.protocol != "http")
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("unknown etcd protocol '{}'", options.protocol));
  if (options.endpoints.empty())
    return makeError(ErrorCode::kInvalidArgument, "no etcd endpoint configured");
  for (auto& e : options.endpoints) {
    if (e.starts_with("https://"))
      return makeError(ErrorCode::kUnsupported,
                       fmt::format("etcd endpoint '{}': https is not supported yet", e));
    if (e.starts_with("http://"))
      e = e.substr(7);
    while (!e.empty() && e.back() == '/')
      e.pop_back();
    auto parsed = splitEtcdEndpoint(e);
    if (!parsed.ok())
      return parsed.error();
  }
  if (options.request_timeout.count() <= 0)
    return makeError(ErrorCode::kInvalidArgument, "etcd request timeout must be positive");
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(options)));
}

EtcdClient::EtcdClient(EtcdClientOptions options)
    : options_(std::move(options)), request_timeout_(options_.request_timeout) {}

EtcdClient::~EtcdClient() = default;

void EtcdClient::setRequestTimeout(Millis timeout) {
  std::lock_guard lock(mu_);
  if (timeout.count() > 0)
    request_timeout_ = timeout;
}

Millis EtcdClient::requestTimeout() const {
  std::lock_guard lock(mu_);
  return request_timeout_;
}

std::vector<std::string> EtcdClient::endpointsInOrder() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  const size_t n = options_.endpoints.size();
  for (size_t i = 0; i < n; ++i)
    out.push_back(options_.endpoints[(preferred_ + i) % n]);
  return out;
}

void EtcdClient::markGood(const std::string& endpoint) {
  std::lock_guard lock(mu_);
  auto it = std::find(options_.endpoints.begin(), options_.endpoints.end(), endpoint);
  if (it != options_.endpoints.end())
    preferred_ = static_cast<size_t>(it - options_.endpoints.begin());
}

std::unique_ptr<HttpConnection> EtcdClient::borrow(const std::string& endpoint) {
  {
    std::lock_guard lock(mu_);
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->first == endpoint) {
        auto connection = std::move(it->second);
        idle_.erase(it);
        return connection;
      }
    }
  }
  return nullptr;
}

void EtcdClient::giveBack(const std::string& endpoint, std::unique_ptr<HttpConnection> connection) {
  // A few idle connections per client are plenty: calls from one agent rarely overlap.
  constexpr size_t kMaxIdle = 4;
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdle)
    idle_.emplace_back(endpoint, std::move(connection));
}

Result<EtcdClient::Answer> EtcdClient::exchange(std::string_view path, const std::string& body,
                                                const std::string& token,
                                                Clock::time_point deadline) {
  const auto order = endpointsInOrder();
  std::string last_error = "no attempt fit in the timeout";
  HttpHeaders headers = {{"Content-Type", "application/json"}};
  if (!token.empty())
    headers.emplace_back("Authorization", token);
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& endpoint = order[i];
    // A pooled connection the server closed fails once; a fresh one then gets a second chance.
    for (int fresh = 0; fresh < 2; ++fresh) {
      const auto now = Clock::now();
      if (now >= deadline)
        break;
      const auto remaining = std::chrono::duration_cast<Millis>(deadline - now);
      const size_t left = order.size() - i;
      const Millis share =
          left > 1 ? std::max(remaining / static_cast<long>(left), std::min(remaining, kMinAttempt))
                   : remaining;
      auto connection = fresh ? nullptr : borrow(endpoint);
      const bool reused = connection != nullptr;
      if (!connection) {
        auto hp = splitEtcdEndpoint(endpoint);  // validated in create()
        connection = std::make_unique<HttpConnection>(hp->first, hp->second);
      }
      const auto sent = Clock::now();
      auto res = postJson(*connection, path, headers, body, sent + share);
      if (!res.complete) {
        last_error = fmt::format("{}: {}", endpoint, res.error);
        // A pooled connection the server closed while idle is replaced before sending; one it
        // closed just as the request went out fails at once: retry on a fresh one. A slow
        // failure means the endpoint itself is in trouble.
        if (reused && Clock::now() - sent < kStaleConnectionFailure)
          continue;
        break;
      }
      if (res.status >= 500) {
        auto err = etcdErrorOf(res.body);
        last_error = fmt::format("{}: http {}: {}", endpoint, res.status,
                                 err ? err->second : snippet(res.text));
        break;
      }
      if (res.body.is_discarded())
        return makeError(ErrorCode::kInternal,
                         fmt::format("etcd {}{}: answer is not json (http {}): {}", endpoint, path,
                                     res.status, snippet(res.text)));
      markGood(endpoint);
      if (connection->reusable())
        giveBack(endpoint, std::move(connection));
      return Answer{res.status, std::move(res.body)};
    }
  }
  return makeError(
      ErrorCode::kDcsUnavailable,
      fmt::format("etcd {}: no endpoint answered in time (last: {})", path, last_error),
      /*retryable=*/true);
}

Result<std::string> EtcdClient::authenticate(Clock::time_point deadline) {
  nlohmann::json req = {{"name", options_.username}, {"password", options_.password}};
  auto a = exchange("/v3/auth/authenticate", req.dump(), "", deadline);
  if (!a.ok())
    return a.error().wrap("authenticating");
  if (auto err = etcdErrorOf(a->body))
    return makeError(ErrorCode::kConfig, fmt::format("etcd authentication as user '{}' failed: {}",
                                                     options_.username, err->second));
  if (!a->body.contains("token") || !a->body["token"].is_string())
    return makeError(ErrorCode::kInternal, "etcd authentication answer carries no token");
  std::string token = a->body["token"].get<std::string>();
  std::lock_guard lock(mu_);
  token_ = token;
  return token;
}

Result<std::string> EtcdClient::tokenUntil(Clock::time_point deadline) {
  if (!authEnabled())
    return std::string();
  {
    std::lock_guard lock(mu_);
    if (!token_.empty())
      return token_;
  }
  return authenticate(deadline);
}

Result<std::string> EtcdClient::token(Millis timeout) {
  return tokenUntil(Clock::now() + std::min(timeout, requestTimeout()));
}

void EtcdClient::invalidateToken(const std::string& stale) {
  std::lock_guard lock(mu_);
  if (token_ == stale)
    token_.clear();
}

Result<nlohmann::json> EtcdClient::call(std::string_view path, const nlohmann::json& request) {
  const auto deadline = Clock::now() + requestTimeout();
  const std::string body = request.dump();
  for (int attempt = 0;; ++attempt) {
    auto token = tokenUntil(deadline);
    if (!token.ok())
      return token.error();
    auto a = exchange(path, body, *token, deadline);
    if (!a.ok())
      return a.error();
    auto err = etcdErrorOf(a->body);
    if (!err && a->status == 200)
      return std::move(a->body);
    const int code = err ? err->first : 0;
    if (code == kGrpcUnauthenticated && authEnabled() && attempt == 0) {
      invalidateToken(*token);
      continue;
    }
    return mapEtcdError(
        code, err ? err->second : fmt::format("unexpected http status {}", a->status), path);
  }
}

}  // namespace pgf
