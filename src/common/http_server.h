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
//
// Deferred replies: the few requests that must wait for an outcome (POST /switchover polls for the
// new leader) return an HttpReply whose `deferred` is set. The server then parks the connection
// (no read timeout while it waits) and runs `deferred` on a thread of its own, so that health
// checks keep being answered meanwhile; its result is written back like a direct answer, with the
// write timeout. At most `max_deferred` run at once (503 beyond); an exception becomes a 500; the
// result is dropped if the client has gone meanwhile. `deferred` must return within a bounded
// time: stop() waits for every one still running.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/http_message.h"
#include "common/result.h"

namespace pgf {

struct HttpRequest {
  std::string method;    // as sent, upper case for every standard method ("GET", "OPTIONS", ...)
  std::string path;      // percent-decoded, without the query string
  std::string raw_path;  // the same as sent, still percent-encoded (a decoded "/" is data)
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
  // When set, the server ignores the other fields and runs this on a worker thread of its own;
  // its result is the answer. For the few requests that must wait (an action that polls for its
  // outcome). It must return within a bounded time. (`= {}` lets the callers that list the four
  // fields above leave this one out without -Wmissing-field-initializers.)
  std::function<HttpReply()> deferred = {};
};

struct HttpServerOptions {
  Millis read_timeout{5000};  // from accepting a connection until its whole request arrived
  Millis write_timeout{5000};
  size_t max_connections = 256;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  // Deferred replies running at once, each on a thread of its own. Slow actions are rare and an
  // operator runs one at a time; the bound keeps a client that repeats them from piling up threads.
  size_t max_deferred = 4;
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
  // Closes the listening socket and every connection, joins the thread, then waits for every
  // deferred reply still running (their results are dropped). Idempotent.
  void stop();
  int port() const { return port_; }

 private:
  // epoll tags: the two descriptors of the server itself, then connection ids.
  static constexpr uint64_t kListenTag = 0;
  static constexpr uint64_t kWakeTag = 1;
  static constexpr uint64_t kFirstConnectionId = 2;

  struct Connection {
    uint64_t id = 0;  // unique for the server's life: the key, unlike the fd, is never reused
    int fd = -1;
    std::string in;
    std::string out;
    size_t out_pos = 0;
    bool writing = false;        // the answer is being sent
    bool sent_continue = false;  // "100 Continue" was sent for this request
    bool registered = false;     // in the epoll set
    bool parked = false;         // waiting for its deferred reply: no deadline, no reads
    bool head = false;           // the parked request is a HEAD
    std::chrono::steady_clock::time_point deadline;
  };
  struct DeferredResult {
    uint64_t connection_id = 0;
    HttpReply reply;
  };
  void run();
  void acceptAll();
  // Reads what is available; false when the connection is finished (answered, failed or closed).
  bool onReadable(Connection& c);
  bool onWritable(Connection& c);
  void answer(Connection& c, const HttpReply& reply, bool head);
  // Parks the connection and starts `work` on a worker thread (503 when too many run); the same
  // meaning of the result as onReadable().
  bool park(Connection& c, std::function<HttpReply()> work, bool head, const std::string& what);
  // On a worker thread: runs `work`, queues its answer and wakes the loop.
  void runDeferred(uint64_t connection_id, const std::function<HttpReply()>& work,
                   const std::string& what);
  // On the serving thread: joins the finished workers and answers their connections.
  void collectDeferred();
  // Adds the connection to the epoll set, or changes what it waits for.
  bool watch(Connection& c, uint32_t events);
  void closeConnection(uint64_t id);

  Handler handler_;
  HttpServerOptions options_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop() and finished workers wake the loop through it
  int port_ = 0;
  std::atomic<bool> stop_{false};
  // Touched only by the serving thread, and by stop() once that thread has ended.
  uint64_t next_id_ = kFirstConnectionId;
  std::map<uint64_t, Connection> connections_;  // by Connection::id
  std::map<uint64_t, std::thread> workers_;     // by Connection::id: one request per connection
  std::thread thread_;
  std::mutex done_mu_;
  std::vector<DeferredResult> done_;  // guarded by done_mu_: workers' answers, not yet collected
};

}  // namespace pgf
