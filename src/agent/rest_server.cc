// RestServer: HttpServer around handleRequest(). Kept apart from the handlers so that they stay
// pure and the HTTP layer stays out of every other file.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/cluster_actions.h"
#include "agent/rest_api.h"
#include "common/basic_auth.h"

namespace pgf {
namespace {

// A client that has not sent its whole request (or read its answer) within these is dropped.
constexpr Millis kReadTimeout{5000};
constexpr Millis kWriteTimeout{5000};

struct ListenAddress {
  std::string host;
  int port = 0;
};

Result<ListenAddress> parseListen(const std::string& listen) {
  ListenAddress a;
  std::string port;
  if (!listen.empty() && listen.front() == '[') {
    auto close = listen.find("]:");
    if (close == std::string::npos)
      return makeError(ErrorCode::kInvalidArgument,
                       fmt::format("listen address \"{}\" must be [host]:port", listen));
    a.host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos)
      return makeError(ErrorCode::kInvalidArgument,
                       fmt::format("listen address \"{}\" must be host:port", listen));
    a.host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (a.host.empty() || a.host == "*")
    a.host = "0.0.0.0";
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535)
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("listen address \"{}\" has an invalid port", listen));
  a.port = static_cast<int>(p);
  return a;
}

HttpReply internalError(const std::exception& e) {
  return HttpReply{500,
                   "application/json",
                   nlohmann::json{{"error", fmt::format("internal error: {}", e.what())}}.dump(
                       -1, ' ', false, nlohmann::json::error_handler_t::replace),
                   {}};
}

bool isMutating(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

std::string_view firstSegment(const std::string& path) {
  std::string_view rest(path);
  while (!rest.empty() && rest.front() == '/')
    rest.remove_prefix(1);
  return rest.substr(0, rest.find('/'));
}

}  // namespace

RestServer::RestServer(std::string listen, StatusProvider provider, const Clock* clock)
    : listen_(std::move(listen)),
      provider_(std::move(provider)),
      clock_(clock != nullptr ? *clock : system_clock_) {}

void RestServer::setCredentials(std::string username, std::string password) {
  username_ = std::move(username);
  password_ = std::move(password);
}

HttpReply RestServer::answer(const HttpRequest& req) {
  try {
    if (isMutating(req.method) && !(username_.empty() && password_.empty()) &&
        !basicAuthMatches(req.header("authorization"), username_, password_)) {
      HttpReply r{
          401,
          "text/plain; charset=utf-8",
          req.header("authorization").empty() ? "no auth header received" : "not authenticated",
          {}};
      r.headers["WWW-Authenticate"] = "Basic realm=\"pgfleet\"";
      return r;
    }
    if (failsafe_handler_ && req.method == "POST" && firstSegment(req.path) == "failsafe")
      return failsafe_handler_(req.body);
    if (actions_ != nullptr) {
      const std::string_view segment = firstSegment(req.path);
      ClusterActions* a = actions_;
      std::string body = req.body;
      if (segment == "switchover" && req.method == "POST")
        return HttpReply{0, "", "", {}, [a, body] { return a->switchover(body); }};
      if (segment == "failover" && req.method == "POST")
        return HttpReply{0, "", "", {}, [a, body] { return a->failover(body); }};
      if (segment == "switchover" && req.method == "DELETE")
        return HttpReply{0, "", "", {}, [a] { return a->cancelSwitchover(); }};
      if (segment == "config" && req.method == "PATCH")
        return HttpReply{0, "", "", {}, [a, body] { return a->patchConfig(body); }};
      if (segment == "config" && req.method == "PUT")
        return HttpReply{0, "", "", {}, [a, body] { return a->putConfig(body); }};
      if (a->hasNodeControl()) {
        if (segment == "restart" && req.method == "POST")
          return HttpReply{0, "", "", {}, [a, body] { return a->restart(body); }};
        if (segment == "restart" && req.method == "DELETE")
          return HttpReply{0, "", "", {}, [a] { return a->cancelRestart(); }};
        if (segment == "reload" && req.method == "POST")
          return HttpReply{0, "", "", {}, [a] { return a->reload(); }};
        if (segment == "reinitialize" && req.method == "POST")
          return HttpReply{0, "", "", {}, [a, body] { return a->reinitialize(body); }};
      }
    }
    AgentStatus snapshot = provider_();
    HttpReply reply =
        handleRequest(snapshot, req.method, req.path, req.query, clock_.now(), clock_.wallNow());
    const std::string_view segment = firstSegment(req.path);
    if (primary_check_observer_ &&
        (segment.empty() || segment == "primary" || segment == "master" ||
         segment == "read-write" || segment == "leader"))
      primary_check_observer_();
    return reply;
  } catch (const std::exception& e) {
    return internalError(e);
  }
}

RestServer::~RestServer() {
  stop();
}

Status RestServer::start() {
  if (server_)
    return makeError(ErrorCode::kInternal, "rest api: already started");
  auto addr = parseListen(listen_);
  if (!addr.ok())
    return addr.error().wrap("rest api");
  HttpServerOptions options;
  options.read_timeout = kReadTimeout;
  options.write_timeout = kWriteTimeout;
  // Every method and path goes to handleRequest, which owns routing, 404 and 405.
  auto server =
      std::make_unique<HttpServer>([this](const HttpRequest& req) { return answer(req); }, options);
  auto started = server->start(addr->host, addr->port);
  if (!started.ok())
    return makeError(ErrorCode::kIo, fmt::format("rest api: cannot listen on {} ({})", listen_,
                                                 started.error().message));
  server_ = std::move(server);
  spdlog::info("rest api listening on {}:{}", addr->host, server_->port());
  return okStatus();
}

void RestServer::stop() {
  if (!server_)
    return;
  server_->stop();
  server_.reset();
}

}  // namespace pgf
