#include "dcs/etcd/etcd_watch.h"

#include <algorithm>

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "dcs/etcd/base64.h"
#include "dcs/etcd/json_stream.h"

namespace pgf {
namespace {

// The stream's read timeout bounds how long the thread can miss the stop flag, and how long a
// hung (not closed) endpoint goes unnoticed. An idle stream therefore reconnects about once a
// second, which costs etcd one cheap watch creation.
constexpr auto kStreamTimeout = std::chrono::milliseconds(1000);
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
      active_->stop();
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
  return cv_.wait_for(lock, timeout, [&] { return stop_ || last_change_ > after_revision; }) &&
         last_change_ > after_revision;
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
  auto token = client_.token(kStreamTimeout);
  if (!token.ok()) {
    spdlog::debug("etcd watch: {}", token.error().message);
    return false;
  }
  auto hp = splitEtcdEndpoint(endpoint);  // validated when the client was created
  if (!hp.ok())
    return false;
  httplib::Client http(hp->first, hp->second);
  http.set_connection_timeout(kStreamTimeout);
  http.set_read_timeout(kStreamTimeout);
  http.set_write_timeout(kStreamTimeout);

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
  httplib::Request req;
  req.method = "POST";
  req.path = "/v3/watch";
  req.body = create.dump();
  req.set_header("Content-Type", "application/json");
  if (!token->empty())
    req.set_header("Authorization", *token);
  JsonStreamSplitter splitter;
  bool created = false;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    for (const auto& text : splitter.feed(std::string_view(data, len))) {
      auto msg = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (msg.is_discarded())
        continue;  // a garbled message: the next one still counts
      if (!handleMessage(msg, created, *token))
        return false;
    }
    return !stopping();
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  http.send(req, res, error);
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
