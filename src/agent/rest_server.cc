// RestServer: cpp-httplib around handleRequest(). Kept apart from the handlers so that they stay
// pure and the HTTP library's headers stay out of every other file.
#include <httplib.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/rest_api.h"

namespace pgf {
namespace {

// Short socket timeouts: health checkers probe every few seconds and a stuck client must not
// hold one of the server's threads for long.
constexpr time_t kReadTimeoutSeconds = 5;
constexpr time_t kWriteTimeoutSeconds = 5;
// How long start() waits for the accept loop to begin; it starts within microseconds normally.
constexpr std::chrono::seconds kStartTimeout{5};

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

void answer(const RestServer::StatusProvider& provider, const Clock& clock,
            const httplib::Request& req, httplib::Response& res) {
  HttpReply reply;
  try {
    AgentStatus snapshot = provider();
    QueryParams query(req.params.begin(), req.params.end());
    reply = handleRequest(snapshot, req.method, req.path, query, clock.now(), clock.wallNow());
  } catch (const std::exception& e) {
    reply = HttpReply{500,
                      "application/json",
                      nlohmann::json{{"error", fmt::format("internal error: {}", e.what())}}.dump(
                          -1, ' ', false, nlohmann::json::error_handler_t::replace),
                      {}};
  }
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers)
    res.set_header(name, value);
  if (!reply.content_type.empty())
    res.set_content(reply.body, reply.content_type.c_str());
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
  auto server = std::make_unique<httplib::Server>();
  server->set_read_timeout(kReadTimeoutSeconds, 0);
  server->set_write_timeout(kWriteTimeoutSeconds, 0);
  // httplib's default also sets SO_REUSEPORT, which would let a second agent bind the same port
  // and silently share the health checks with us. SO_REUSEADDR alone still allows a quick restart.
  server->set_socket_options([](auto sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    answer(provider_, clock_, req, res);
  };
  // Every method and path goes to handleRequest, which owns routing, 404 and 405. httplib serves
  // HEAD through the GET handlers and leaves the body out.
  const std::string any = ".*";
  server->Get(any, handler);
  server->Post(any, handler);
  server->Put(any, handler);
  server->Patch(any, handler);
  server->Delete(any, handler);
  server->Options(any, handler);

  int port = addr->port;
  if (port == 0) {
    port = server->bind_to_any_port(addr->host);
    if (port < 0)
      port = 0;
  } else if (!server->bind_to_port(addr->host, port)) {
    port = 0;
  }
  if (port == 0)
    return makeError(
        ErrorCode::kIo,
        fmt::format("rest api: cannot listen on {} (address in use or not local?)", listen_));
  port_ = port;
  server_ = std::move(server);
  serving_done_ = false;
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind())
      spdlog::error("rest api: the server on {} stopped unexpectedly", listen_);
    serving_done_ = true;
  });
  // Report success only once the server accepts connections.
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!server_->is_running()) {
    stop();
    return makeError(ErrorCode::kInternal,
                     fmt::format("rest api: the server on {} did not start", listen_));
  }
  spdlog::info("rest api listening on {}:{}", addr->host, port_);
  return okStatus();
}

void RestServer::stop() {
  if (!server_)
    return;
  // httplib's stop() only reaches a server inside its accept loop; until the thread gets there
  // (or gives up), keep waiting rather than lose the stop.
  while (!serving_done_) {
    if (server_->is_running()) {
      server_->stop();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (thread_.joinable())
    thread_.join();
  server_.reset();
  port_ = 0;
}

}  // namespace pgf
