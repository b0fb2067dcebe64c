// HttpConnection: a small blocking HTTP/1.1 client over one TCP connection, for pgfleet's own
// calls: etcd's JSON gateway (unary POSTs and the watch stream) and the peers' REST APIs.
//
// Contract:
// - request() sends one request and reads its whole answer before the deadline, or fails. It
//   never throws. Bodies framed by Content-Length, by chunked transfer-encoding (trailers
//   accepted and kept) and by the end of the connection are understood; an answer without a body
//   (HEAD, 1xx, 204, 304) has none. Interim 1xx answers are skipped.
// - Keep-alive: the connection stays open after a complete answer unless the server asked to
//   close it (or spoke HTTP/1.0 without keep-alive); the next request() reuses it, and reconnects
//   when the server closed it while idle. A request that fails on a reused connection is not
//   retried here: only the caller knows whether its request may be sent twice.
// - Limits, so that a broken or hostile server cannot exhaust memory: the status line and headers
//   (and, separately, a chunked body's trailers) at most kHttpMaxHeaderBytes, a body collected into
//   HttpResponse::body at most kHttpMaxBodyBytes. A body handed to a sink is not limited.
// - Timeouts: every wait (connect, send, each read) ends at the deadline, and with an idle timeout
//   also when the socket made no progress for that long (streams that may stay open for ever).
//   Name resolution uses the system resolver and its own timeouts; numeric addresses ("127.0.0.1",
//   "::1") and /etc/hosts names never wait.
// - Errors: kTimeout (deadline or idle timeout), kIo (resolution, connection refused or reset,
//   closed mid-answer, aborted), kParse (a malformed answer), kUnsupported (an answer over the
//   limits, a transfer coding other than chunked), kInvalidArgument (a request that cannot be
//   written: CR/LF in a header, a caller-supplied Content-Length). After any error the connection
//   is closed.
// - No TLS, proxies, redirects, compression or pipelining.
//
// Thread safety: one thread uses a connection at a time, except abort(), which any thread may
// call at any time.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace pgf {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Receives an answer's body piece by piece as it arrives (however the server cut it); returns
// false to stop reading, which closes the connection.
using HttpBodySink = std::function<bool(std::string_view piece)>;

inline constexpr size_t kHttpMaxHeaderBytes = 64 * 1024;
inline constexpr size_t kHttpMaxBodyBytes = 64 * 1024 * 1024;

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;   // as received, in order
  HttpHeaders trailers;  // the trailer fields of a chunked body
  std::string body;      // empty when a sink received the body
  bool complete = true;  // false only when the sink stopped reading before the end

  // The value of the first header named `name` (case-insensitive), "" when there is none.
  std::string header(std::string_view name) const;
};

class HttpConnection {
 public:
  // `host` is a name or a numeric address (IPv6 without brackets). Nothing happens until the
  // first request().
  HttpConnection(std::string host, int port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends `method` `path` with `headers` and `body`, connecting first if needed, and reads the
  // answer. Host (unless given), Content-Length (when there is a body or the method is
  // POST/PUT/PATCH) and Connection: keep-alive (unless given) are added. With `on_body` the body
  // goes to the sink instead of HttpResponse::body; when the sink stops, the answer so far is
  // returned with complete = false. `idle_timeout` > 0 also fails the request when no byte could
  // be sent or received for that long. Any HTTP status is a successful result.
  Result<HttpResponse> request(std::string_view method, std::string_view path,
                               const HttpHeaders& headers, std::string_view body, MonoTime deadline,
                               const HttpBodySink& on_body = {}, Millis idle_timeout = Millis(0));

  // true when the last request() read a complete answer and the connection can carry another.
  bool reusable() const { return reusable_; }

  // Thread-safe: makes a request() blocked on another thread fail promptly with kIo ("aborted"),
  // and every later one at once. The connection cannot be used again.
  void abort();

  // Closes the socket; the next request() connects again.
  void close();

  const std::string& host() const { return host_; }
  int port() const { return port_; }

 private:
  struct Waits;
  struct Framing;

  Result<HttpResponse> exchange(std::string_view method, std::string_view path,
                                const HttpHeaders& headers, std::string_view body,
                                const Waits& waits, const HttpBodySink& on_body);
  Status connect(const Waits& waits);
  bool idleSocketUsable() const;
  Status waitReady(short events, const Waits& waits, std::string_view doing);
  Status sendAll(std::string_view data, const Waits& waits);
  Result<bool> readMore(const Waits& waits);  // false: the server closed the connection
  Result<std::string> readLine(const Waits& waits, size_t limit);
  Result<HttpHeaders> readFields(const Waits& waits, std::string_view what);
  Result<Framing> readHead(std::string_view method, const Waits& waits, HttpResponse& res);
  static Result<Framing> framingOf(std::string_view method, bool http10, const HttpResponse& res);
  Status readBody(const Framing& framing, const Waits& waits, const HttpBodySink& on_body,
                  HttpResponse& res);
  Status readChunked(const Waits& waits, const HttpBodySink& on_body, HttpResponse& res);
  Status readExactly(size_t n, const Waits& waits, const HttpBodySink& on_body, HttpResponse& res);
  Status deliver(std::string_view piece, const HttpBodySink& on_body, HttpResponse& res);

  const std::string host_;
  const int port_;
  std::string buf_;        // received bytes not consumed yet
  bool reusable_ = false;  // the socket is open between two complete exchanges
  std::mutex mu_;          // guards fd_ changes against abort()
  int fd_ = -1;            // written under mu_ by the using thread only, so it reads it freely
  std::atomic<bool> aborted_{false};
};

}  // namespace pgf
