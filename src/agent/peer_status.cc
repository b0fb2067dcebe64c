#include "agent/peer_status.h"

#include <future>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/http_client.h"
#include "postgres/lsn.h"

namespace pgf {
namespace {

int64_t positionOf(const nlohmann::json& v) {
  if (v.is_number_integer())
    return v.get<int64_t>();
  if (v.is_string()) {
    auto r = parseLsn(v.get<std::string>());
    if (r.ok())
      return *r;
  }
  return 0;
}

bool truthy(const nlohmann::json& v) {
  if (v.is_boolean())
    return v.get<bool>();
  if (v.is_string())
    return v == "true" || v == "True" || v == "on";
  return false;
}

}  // namespace

PeerStatus parsePeerStatus(const std::string& name, const std::string& body) {
  PeerStatus p;
  p.name = name;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object())
    return p;
  p.reachable = true;
  std::string role = j.value("role", "");
  std::string state = j.value("state", "");
  p.running = state == "running";
  p.in_recovery = !(role == "master" || role == "primary");
  if (j.contains("timeline") && j["timeline"].is_number_integer())
    p.timeline = j["timeline"];
  if (j.contains("xlog") && j["xlog"].is_object()) {
    const auto& x = j["xlog"];
    if (x.contains("location"))
      p.wal_position = positionOf(x["location"]);
    int64_t received = x.contains("received_location") ? positionOf(x["received_location"]) : 0;
    int64_t replayed = x.contains("replayed_location") ? positionOf(x["replayed_location"]) : 0;
    p.wal_position = std::max({p.wal_position, received, replayed});
  }
  if (j.contains("tags") && j["tags"].is_object() && j["tags"].contains("nofailover"))
    p.nofailover = truthy(j["tags"]["nofailover"]);
  return p;
}

bool splitHttpUrl(const std::string& url, std::string* host, int* port, std::string* path) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    return false;
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  *path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    *host = hostport;
    *port = 80;
  } else {
    *host = hostport.substr(0, colon);
    *port = std::atoi(hostport.c_str() + colon + 1);
  }
  if (host->size() > 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  return !host->empty() && *port > 0 && *port < 65536;
}

PeerStatus selfPeerStatus(const AgentStatus& s) {
  PeerStatus p;
  p.name = s.name;
  p.reachable = true;
  p.running = s.pg.running && s.pg.accepting;
  p.in_recovery = s.pg.in_recovery;
  p.wal_position = s.pg.wal_position;
  p.timeline = s.pg.timeline;
  p.nofailover = s.tags.nofailover;
  return p;
}

std::vector<PeerStatus> fetchPeerStatuses(const ClusterView& cluster, const std::string& self,
                                          Millis timeout) {
  std::vector<std::future<PeerStatus>> futures;
  for (const auto& m : cluster.members) {
    if (m.name == self)
      continue;
    futures.push_back(std::async(std::launch::async, [m, timeout] {
      PeerStatus unreachable;
      unreachable.name = m.name;
      unreachable.nofailover = m.tags.nofailover;
      std::string host, path;
      int port = 0;
      if (!splitHttpUrl(m.api_url, &host, &port, &path))
        return unreachable;
      // One question per member and cycle: no connection is kept.
      HttpConnection http(host, port);
      auto res = http.request("GET", path, {{"Connection", "close"}}, {},
                              std::chrono::steady_clock::now() + timeout);
      if (!res.ok())
        return unreachable;
      // Patroni answers /patroni with 200 or 503 (not running); both carry the status document.
      PeerStatus p = parsePeerStatus(m.name, res->body);
      if (!p.reachable)
        return unreachable;
      p.nofailover = p.nofailover || m.tags.nofailover;
      return p;
    }));
  }
  std::vector<PeerStatus> out;
  out.reserve(futures.size());
  for (auto& f : futures)
    out.push_back(f.get());
  return out;
}

std::vector<FailsafeAck> postFailsafeHeartbeats(const std::map<std::string, std::string>& members,
                                                const std::string& self,
                                                const std::string& heartbeat,
                                                const std::string& username,
                                                const std::string& password, Millis timeout) {
  HttpHeaders headers = {{"Connection", "close"}, {"Content-Type", "application/json"}};
  if (!username.empty() || !password.empty())
    headers.emplace_back("Authorization", "Basic " + base64Encode(username + ":" + password));
  std::vector<std::future<FailsafeAck>> futures;
  for (const auto& [name, api_url] : members) {
    if (name == self)
      continue;
    futures.push_back(
        std::async(std::launch::async, [name, api_url, &heartbeat, &headers, timeout] {
          FailsafeAck ack;
          ack.name = name;
          std::string host, path;
          int port = 0;
          if (!splitHttpUrl(api_url, &host, &port, &path)) {
            ack.detail = fmt::format("unusable api_url \"{}\"", api_url);
            return ack;
          }
          HttpConnection http(host, port);
          auto res = http.request("POST", "/failsafe", headers, heartbeat,
                                  std::chrono::steady_clock::now() + timeout);
          if (!res.ok()) {
            ack.detail = res.error().message;
            return ack;
          }
          ack.accepted = res->status == 200 && res->body == "Accepted";
          if (!ack.accepted)
            ack.detail = fmt::format("{} {}", res->status, res->body.substr(0, 200));
          return ack;
        }));
  }
  std::vector<FailsafeAck> out;
  out.reserve(futures.size());
  for (auto& f : futures)
    out.push_back(f.get());
  return out;
}

}  // namespace pgf
