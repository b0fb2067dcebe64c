// HttpServer: a small HTTP/1.1 server on one thread, for the agent's REST API.
//
// Health checkers (HAProxy, Kubernetes, monitoring) ask a few times per second and every answer is
// computed from a snapshot in memory, so one event-driven thread serves them all: no hand-off to a
// worker pool, no thread per connection, and no wake-up at all while nobody asks. A connection that
// is slow to send its request does not hold up the others; it is dropped when its read timeout
// passes. Each connection carries one request and is closed after the answer (`Connection: close`).
//
// Limits: the request line and headers at most 16 KiB (431 beyond), a body at most 1 MiB (413), a
// body only with Content-Length (411 for chunked), at most 256 open connections (more are closed
// at once). Malformed requests get 400 and never reach the handler. The handler runs on the
// server's thread and must not block; an exception it throws becomes a 500.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/http_message.h"
#include "common/result.h"

namespace pgf {

struct HttpRequest {
  std::string method;  // as sent, upper case for every standard method ("GET", "OPTIONS", ...)
  std::string path;    // percent-decoded, without the query string
  std::multimap<std::string, std::string> query;  // decoded; a repeated key keeps every value
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;

  // The first header named `name` (lower case), or "".
  std::string header(std::string_view name) const;
};

struct HttpReply {
  int status = 200;
  std::string content_type;  // "" when there is no body
  std::string body;
  std::map<std::string, std::string> headers;  // extra headers, such as Allow on a 405
};

struct HttpServerOptions {
  Millis read_timeout{5000};  // from accepting a connection until its whole request arrived
  Millis write_timeout{5000};
  size_t max_connections = 256;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
};

class HttpServer {
 public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;

  explicit HttpServer(Handler handler, HttpServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds `host`:`port` (an IPv4 or IPv6 literal or a name; port 0 picks a free port, see port())
  // and serves on a thread of its own. kIo when the address cannot be bound.
  Status start(const std::string& host, int port);
  // Closes the listening socket and every connection, and joins the thread. Idempotent.
  void stop();
  int port() const { return port_; }

 private:
  struct Connection {
    int fd = -1;
    std::string in;
    std::string out;
    size_t out_pos = 0;
    bool writing = false;        // the answer is being sent
    bool sent_continue = false;  // "100 Continue" was sent for this request
    bool registered = false;     // in the epoll set
    std::chrono::steady_clock::time_point deadline;
  };
  void run();
  void acceptAll();
  // Reads what is available; false when the connection is finished (answered, failed or closed).
  bool onReadable(Connection& c);
  bool onWritable(Connection& c);
  void answer(Connection& c, const HttpReply& reply, bool head);
  // Adds the connection to the epoll set, or changes what it waits for.
  bool watch(Connection& c, uint32_t events);
  void closeConnection(int fd);

  Handler handler_;
  HttpServerOptions options_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop() wakes the loop through it
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::map<int, Connection> connections_;  // touched only by the serving thread
  std::thread thread_;
};

}  // namespace pgf
