#include "dcs/etcd/etcd_watch.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/base64.h"
#include "common/http_client.h"
#include "dcs/etcd/json_stream.h"

namespace pgf {
namespace {

// The stream's idle timeout bounds how long a hung (not closed) endpoint goes unnoticed by the
// watch. It can be long: every member rewrites its key each loop, so a live stream is rarely quiet
// for long, and the HA loop reads the cluster every loop through the client (which has its own
// request timeouts and endpoint failover) whatever the watch does. An idle stream reconnects at
// most this often. stop() does not wait for it: it aborts the stream.
constexpr auto kStreamTimeout = std::chrono::milliseconds(10000);
// Authentication before a stream is bounded separately, so that a stop request is not held up.
constexpr auto kAuthTimeout = std::chrono::milliseconds(1000);
// Backoff after a failed connection: short, because waiters keep their own timeout and every
// second without a watch delays a replica's reaction to a lost leader.
constexpr Millis kMinBackoff{100};
constexpr Millis kMaxBackoff{1000};

std::string prefixEnd(std::string prefix) {
  // The range end of a prefix is the prefix with its last byte incremented ("/a/" -> "/a0").
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

}  // namespace

EtcdWatch::EtcdWatch(EtcdClient& client, std::string prefix, std::vector<std::string> watched_keys)
    : client_(client),
      prefix_(std::move(prefix)),
      watched_(watched_keys.begin(), watched_keys.end()) {}

EtcdWatch::~EtcdWatch() {
  stop();
}

void EtcdWatch::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (active_)
      active_->abort();
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

bool EtcdWatch::stopping() {
  std::lock_guard lock(mu_);
  return stop_;
}

bool EtcdWatch::waitForChange(int64_t after_revision, Millis timeout) {
  std::unique_lock lock(mu_);
  if (stop_)
    return false;
  if (!started_) {
    started_ = true;
    watch_from_ = next_revision_ = after_revision + 1;
    thread_ = std::thread([this] { run(); });
  } else if (after_revision + 1 < watch_from_) {
    return true;
  }
  cv_.wait_for(lock, timeout, [&] { return stop_ || woken_ || last_change_ > after_revision; });
  woken_ = false;
  return last_change_ > after_revision;
}

void EtcdWatch::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void EtcdWatch::run() {
  size_t next_endpoint = 0;
  Millis backoff = kMinBackoff;
  while (!stopping()) {
    auto order = client_.endpointsInOrder();
    const std::string endpoint = order[next_endpoint % order.size()];
    if (streamOnce(endpoint)) {
      backoff = kMinBackoff;
      continue;  // the stream worked and ended (idle timeout, server closed): resume at once
    }
    ++next_endpoint;
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, backoff, [&] { return stop_; });
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

bool EtcdWatch::streamOnce(const std::string& endpoint) {
  // Bounded like the stream itself, so a stop request is noticed even while authenticating.
  auto token = client_.token(kAuthTimeout);
  if (!token.ok()) {
    spdlog::debug("etcd watch: {}", token.error().message);
    return false;
  }
  auto hp = splitEtcdEndpoint(endpoint);  // validated when the client was created
  if (!hp.ok())
    return false;
  HttpConnection http(hp->first, hp->second);

  nlohmann::json create;
  {
    std::lock_guard lock(mu_);
    if (stop_)
      return false;
    active_ = &http;
    create = {{"create_request",
               {{"key", base64Encode(prefix_)},
                {"range_end", base64Encode(prefixEnd(prefix_))},
                {"start_revision", std::to_string(next_revision_)}}}};
  }
  HttpHeaders headers = {{"Content-Type", "application/json"}};
  if (!token->empty())
    headers.emplace_back("Authorization", *token);
  JsonStreamSplitter splitter;
  bool created = false;
  auto on_body = [&](std::string_view piece) {
    for (const auto& text : splitter.feed(piece)) {
      auto msg = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (msg.is_discarded())
        continue;  // a garbled message: the next one still counts
      if (!handleMessage(msg, created, *token))
        return false;
    }
    return !stopping();
  };
  // No overall deadline: the stream lasts until it idles, breaks, or stop() aborts it. Whatever
  // ended it, the next stream starts from next_revision_.
  auto ended = http.request("POST", "/v3/watch", headers, create.dump(), MonoTime::max(), on_body,
                            kStreamTimeout);
  // An idle stream times out every kStreamTimeout: not worth a line.
  if (!ended.ok() && ended.error().code != ErrorCode::kTimeout && !stopping())
    spdlog::debug("etcd watch on {}: {}", endpoint, ended.error().message);
  {
    std::lock_guard lock(mu_);
    active_ = nullptr;
  }
  if (created)
    client_.markGood(endpoint);
  return created;
}

bool EtcdWatch::handleMessage(const nlohmann::json& msg, bool& created, const std::string& token) {
  if (auto err = etcdErrorOf(msg)) {
    if (err->second.find("auth token") != std::string::npos)
      client_.invalidateToken(token);
    return false;
  }
  auto it = msg.find("result");
  if (it == msg.end() || !it->is_object())
    return true;
  const auto& result = *it;
  if (jsonBool(result, "created"))
    created = true;
  if (jsonBool(result, "canceled")) {
    const std::string reason = jsonString(result, "cancel_reason");
    if (reason.find("auth token") != std::string::npos)
      client_.invalidateToken(token);
    created = false;
    const int64_t compacted = jsonInt64(result, "compact_revision");
    if (compacted > 0) {
      // Our resume point was compacted away: whatever happened there is unknowable, so report a
      // change and continue from the oldest revision still kept.
      std::lock_guard lock(mu_);
      next_revision_ = compacted;
      last_change_ = std::max(
          last_change_,
          jsonInt64(result.contains("header") ? result["header"] : result, "revision", compacted));
      cv_.notify_all();
      created = true;  // the endpoint works; reconnect without backoff
    }
    return false;
  }
  auto events = result.find("events");
  if (events == result.end() || !events->is_array())
    return true;
  int64_t max_rev = 0;
  int64_t changed = 0;
  for (const auto& ev : *events) {
    auto kv_it = ev.is_object() ? ev.find("kv") : ev.end();
    if (!ev.is_object() || kv_it == ev.end())
      continue;
    const auto& kv = *kv_it;
    const int64_t rev = jsonInt64(kv, "mod_revision");
    max_rev = std::max(max_rev, rev);
    auto key = base64Decode(jsonString(kv, "key"));
    if (key && watched_.count(*key))
      changed = std::max(changed, rev);
  }
  std::lock_guard lock(mu_);
  next_revision_ = std::max(next_revision_, max_rev + 1);
  if (changed > last_change_) {
    last_change_ = changed;
    cv_.notify_all();
  }
  return true;
}

}  // namespace pgf
