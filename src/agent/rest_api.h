// The agent's REST API, compatible with Patroni 3.0.2's (patroni/api.py): the same paths, status
// codes and JSON shapes, so that HAProxy health checks, Kubernetes probes and monitoring written
// for Patroni work unchanged. See docs/rest-api.md.
//
// handleRequest() is a pure function of a status snapshot, the request and the time: it does no
// I/O, never blocks and never throws, so every endpoint is unit-tested without a socket. RestServer
// is the thin HTTP layer over it (HttpServer, one event-driven thread): each request takes a fresh
// snapshot from the provider (the HA loop publishes one per cycle) and answers from it, so the API
// never waits on the DCS or PostgreSQL.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "agent/status.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/result.h"

namespace pgf {

// Query parameters as decoded by the HTTP layer; where a key repeats, the first value counts.
using QueryParams = std::multimap<std::string, std::string>;

// Answers one request. `method` is upper case ("GET", "HEAD", "OPTIONS", ...); `path` excludes the
// query string. HEAD and OPTIONS get the status code only (as Patroni writes for HAProxy), GET the
// JSON document as well.
HttpReply handleRequest(const AgentStatus& s, const std::string& method, const std::string& path,
                        const QueryParams& query, MonoTime now, WallTime wall);

// Parses a ?lag= value as Patroni does: bytes, or a number with a unit B, kB, MB, GB or TB
// ("16MB" = 16777216). Errors (kInvalidArgument) on anything else, including negative values.
Result<int64_t> parseLagBytes(const std::string& text);

class ClusterActions;

class RestServer {
 public:
  using StatusProvider = std::function<AgentStatus()>;

  // `listen` is "host:port" ("*", "0.0.0.0" or "" for every IPv4 interface, "[::1]:8008" for IPv6;
  // port 0 picks a free port, see port()). `clock` defaults to the system clock; it must outlive
  // the server.
  RestServer(std::string listen, StatusProvider provider, const Clock* clock = nullptr);
  ~RestServer();
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;

  // Before start(): the endpoints that change the cluster (POST /switchover, /failover, DELETE
  // /switchover, PATCH and PUT /config) are served by `actions` (not owned; it must outlive the
  // server) on worker threads; without it they answer 501.
  void setActions(ClusterActions* actions) { actions_ = actions; }
  // Before start(): every POST, PUT, PATCH and DELETE needs these basic-auth credentials (401
  // otherwise); both empty: no check. Reads (GET, HEAD, OPTIONS) stay open.
  void setCredentials(std::string username, std::string password);
  // Before start(): called (on the server's thread; it must not block) after every answered
  // health check of the primary family (/, /primary, /master, /read-write, /leader), so the agent
  // can tell when a load balancer has seen a change of role.
  void setPrimaryCheckObserver(std::function<void()> observer) {
    primary_check_observer_ = std::move(observer);
  }

  // Before start(): answers POST /failsafe (it must not block; Agent::acceptFailsafeHeartbeat).
  // Without it, POST /failsafe answers 501.
  void setFailsafeHandler(std::function<HttpReply(const std::string&)> handler) {
    failsafe_handler_ = std::move(handler);
  }

  // Binds the socket (an error if it cannot) and serves on a thread of its own.
  Status start();
  // Stops serving and joins the thread. Idempotent; the destructor calls it.
  void stop();
  // The bound port (after a successful start()), 0 before.
  int port() const { return server_ ? server_->port() : 0; }

 private:
  HttpReply answer(const HttpRequest& req);

  std::string listen_;
  StatusProvider provider_;
  ClusterActions* actions_ = nullptr;
  std::function<void()> primary_check_observer_;
  std::function<HttpReply(const std::string&)> failsafe_handler_;
  std::string username_;
  std::string password_;
  SystemClock system_clock_;
  const Clock& clock_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace pgf
