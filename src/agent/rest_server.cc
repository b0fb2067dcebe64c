// RestServer: HttpServer around handleRequest(). Kept apart from the handlers so that they stay
// pure and the HTTP layer stays out of every other file.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/rest_api.h"

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

HttpReply answer(const RestServer::StatusProvider& provider, const Clock& clock,
                 const HttpRequest& req) {
  try {
    AgentStatus snapshot = provider();
    return handleRequest(snapshot, req.method, req.path, req.query, clock.now(), clock.wallNow());
  } catch (const std::exception& e) {
    return HttpReply{500,
                     "application/json",
                     nlohmann::json{{"error", fmt::format("internal error: {}", e.what())}}.dump(
                         -1, ' ', false, nlohmann::json::error_handler_t::replace),
                     {}};
  }
}

}  // namespace

RestServer::RestServer(std::string listen, StatusProvider provider, const Clock* clock)
    : listen_(std::move(listen)),
      provider_(std::move(provider)),
      clock_(clock != nullptr ? *clock : system_clock_) {}

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
  auto server = std::make_unique<HttpServer>(
      [this](const HttpRequest& req) { return answer(provider_, clock_, req); }, options);
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
