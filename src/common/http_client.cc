#include "common/http_client.h"

#include "common/http_message.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace pgf {
namespace {

// One recv() reads at most this much: the size of a typical etcd answer, and small enough for the
// stack.
constexpr size_t kReadChunk = 16 * 1024;
// A chunk-size line is a hex number and maybe an extension; nothing legitimate comes near this.
constexpr size_t kMaxChunkLine = 4096;

bool hasHeader(const HttpHeaders& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return equalsIgnoreCase(h.first, name); });
}

// The body length from the Content-Length header(s): repeated ones must agree.
Result<size_t> parseContentLength(const HttpHeaders& headers) {
  std::string_view text;
  for (const auto& [name, value] : headers) {
    if (!equalsIgnoreCase(name, "content-length"))
      continue;
    if (!text.empty() && text != value)
      return makeError(ErrorCode::kParse, "answer has conflicting content-length headers");
    text = value;
  }
  auto length = parseHttpLength(text);
  if (!length)
    return makeError(ErrorCode::kParse,
                     fmt::format("malformed content-length '{}'", text.substr(0, 40)));
  return *length;
}

Error sysError(std::string_view doing, int err) {
  std::string text = std::strerror(err);
  if (!text.empty())
    text[0] = asciiLower(text[0]);
  return makeError(ErrorCode::kIo, fmt::format("{}: {}", doing, text), /*retryable=*/true);
}

Error closedError(std::string_view when) {
  return makeError(ErrorCode::kIo, fmt::format("connection closed by the server {}", when),
                   /*retryable=*/true);
}

}  // namespace

// When a wait ends: at the deadline, or earlier after `idle` without progress.
struct HttpConnection::Waits {
  MonoTime deadline;
  Millis idle{0};
};

// How the answer's body is delimited.
struct HttpConnection::Framing {
  enum class Kind { kNone, kLength, kChunked, kUntilClose } kind = Kind::kNone;
  size_t length = 0;
  bool keep_alive = false;
};

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (equalsIgnoreCase(n, name))
      return v;
  }
  return {};
}

HttpConnection::HttpConnection(std::string host, int port) : host_(std::move(host)), port_(port) {}

HttpConnection::~HttpConnection() {
  close();
}

void HttpConnection::abort() {
  std::lock_guard lock(mu_);
  aborted_ = true;
  // Wakes a poll() on the socket at once, whatever the connection's state; the request then sees
  // aborted_. The descriptor itself is closed by the thread that uses it.
  if (fd_ >= 0)
    ::shutdown(fd_, SHUT_RDWR);
}

void HttpConnection::close() {
  std::lock_guard lock(mu_);
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  buf_.clear();
  reusable_ = false;
}

Result<HttpResponse> HttpConnection::request(std::string_view method, std::string_view path,
                                             const HttpHeaders& headers, std::string_view body,
                                             MonoTime deadline, const HttpBodySink& on_body,
                                             Millis idle_timeout) {
  const bool was_reusable = reusable_;
  reusable_ = false;
  if (!isHttpToken(method) || path.empty() || !isSafeHttpText(path) || path.find(' ') != path.npos)
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("invalid http request line '{} {}'", method, path));
  for (const auto& [name, value] : headers) {
    if (!isHttpToken(name) || !isSafeHttpText(value))
      return makeError(ErrorCode::kInvalidArgument, fmt::format("invalid http header '{}'", name));
    if (equalsIgnoreCase(name, "content-length") || equalsIgnoreCase(name, "transfer-encoding"))
      return makeError(ErrorCode::kInvalidArgument,
                       fmt::format("http header '{}' is computed, not given", name));
  }
  if (fd_ >= 0 && !(was_reusable && idleSocketUsable()))
    close();
  auto res = exchange(method, path, headers, body, Waits{deadline, idle_timeout}, on_body);
  if (!res.ok() || !reusable_)
    close();
  if (!res.ok() && aborted_)
    return makeError(ErrorCode::kIo, "aborted");
  return res;
}

bool HttpConnection::idleSocketUsable() const {
  // An idle keep-alive socket must have nothing to read: readable means the server closed it (or
  // sent something unasked), and either way it cannot carry a request.
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

Result<HttpResponse> HttpConnection::exchange(std::string_view method, std::string_view path,
                                              const HttpHeaders& headers, std::string_view body,
                                              const Waits& waits, const HttpBodySink& on_body) {
  if (fd_ < 0) {
    auto connected = connect(waits);
    if (!connected.ok())
      return connected.error();
  }
  std::string out = fmt::format("{} {} HTTP/1.1\r\n", method, path);
  if (!hasHeader(headers, "host")) {
    const bool v6 = host_.find(':') != std::string::npos;
    out += fmt::format("Host: {}{}{}", v6 ? "[" : "", host_, v6 ? "]" : "");
    out += port_ == 80 ? "\r\n" : fmt::format(":{}\r\n", port_);
  }
  for (const auto& [name, value] : headers)
    out += fmt::format("{}: {}\r\n", name, value);
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
    out += fmt::format("Content-Length: {}\r\n", body.size());
  if (!hasHeader(headers, "connection"))
    out += "Connection: keep-alive\r\n";
  out += "\r\n";
  out += body;
  auto sent = sendAll(out, waits);
  if (!sent.ok())
    return sent.error();

  HttpResponse res;
  auto framing = readHead(method, waits, res);
  if (!framing.ok())
    return framing.error();
  auto read = readBody(*framing, waits, on_body, res);
  if (!read.ok())
    return read.error();
  // Bytes after the answer were never asked for: the connection's state is unknown.
  reusable_ = res.complete && framing->keep_alive && buf_.empty() &&
              framing->kind != Framing::Kind::kUntilClose;
  return res;
}

Status HttpConnection::connect(const Waits& waits) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &found);
  if (rc != 0)
    return makeError(ErrorCode::kIo, fmt::format("resolving '{}': {}", host_, gai_strerror(rc)),
                     /*retryable=*/true);
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  Error last = makeError(ErrorCode::kIo, fmt::format("'{}' has no address", host_), true);
  // Addresses in the resolver's order ("localhost" may give ::1 before 127.0.0.1): a refused one
  // fails at once and the next is tried.
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = sysError("creating a socket", errno);
      continue;
    }
    {
      std::lock_guard lock(mu_);
      fd_ = fd;
      if (aborted_)
        return makeError(ErrorCode::kIo, "aborted");
    }
    // Requests are small and answered at once: never hold a segment back (Nagle).
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      return okStatus();
    if (errno != EINPROGRESS) {
      last = sysError("connecting", errno);
      close();
      continue;
    }
    auto ready = waitReady(POLLOUT, waits, "connecting");
    if (!ready.ok())
      return ready.error();  // the deadline leaves no time for another address
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
      return okStatus();
    last = sysError("connecting", err != 0 ? err : errno);
    close();
  }
  return last;
}

Status HttpConnection::waitReady(short events, const Waits& waits, std::string_view doing) {
  const MonoTime start = std::chrono::steady_clock::now();
  const MonoTime until =
      waits.idle.count() > 0 ? std::min(waits.deadline, start + waits.idle) : waits.deadline;
  for (;;) {
    if (aborted_)
      return makeError(ErrorCode::kIo, "aborted");
    const MonoTime now = std::chrono::steady_clock::now();
    if (now >= until) {
      if (until < waits.deadline)
        return makeError(ErrorCode::kTimeout,
                         fmt::format("{}: nothing happened for {} ms", doing, waits.idle.count()),
                         /*retryable=*/true);
      return makeError(ErrorCode::kTimeout, fmt::format("{}: timed out", doing),
                       /*retryable=*/true);
    }
    const auto ms = std::chrono::ceil<Millis>(until - now).count();
    pollfd p{fd_, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(ms, INT_MAX)));
    if (n > 0)
      return okStatus();  // ready, or an error/hangup that the next send or recv reports
    if (n < 0 && errno != EINTR)
      return sysError("poll", errno);
  }
}

Status HttpConnection::sendAll(std::string_view data, const Waits& waits) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      auto ready = waitReady(POLLOUT, waits, "sending the request");
      if (!ready.ok())
        return ready;
    } else if (errno != EINTR) {
      return sysError("sending the request", errno);
    }
  }
  return okStatus();
}

Result<bool> HttpConnection::readMore(const Waits& waits) {
  char chunk[kReadChunk];
  for (;;) {
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buf_.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n == 0)
      return false;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      auto ready = waitReady(POLLIN, waits, "waiting for the answer");
      if (!ready.ok())
        return ready.error();
    } else if (errno != EINTR) {
      return sysError("reading the answer", errno);
    }
  }
}

Result<std::string> HttpConnection::readLine(const Waits& waits, size_t limit) {
  size_t scanned = 0;
  for (;;) {
    const size_t nl = buf_.find('\n', scanned);
    if (nl != std::string::npos && nl <= limit) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r')
        line.pop_back();
      return line;
    }
    if (buf_.size() > limit)
      return makeError(ErrorCode::kUnsupported,
                       fmt::format("answer has a line longer than {} bytes", limit));
    scanned = buf_.size();
    auto more = readMore(waits);
    if (!more.ok())
      return more.error();
    if (!*more)
      return closedError("in the middle of the answer");
  }
}

Result<HttpHeaders> HttpConnection::readFields(const Waits& waits, std::string_view what) {
  HttpHeaders fields;
  size_t used = 0;
  for (;;) {
    auto line = readLine(waits, kHttpMaxHeaderBytes - used);
    if (!line.ok()) {
      if (line.error().code == ErrorCode::kUnsupported)
        return makeError(ErrorCode::kUnsupported,
                         fmt::format("answer {} exceed {} bytes", what, kHttpMaxHeaderBytes));
      return line.error();
    }
    used = std::min(kHttpMaxHeaderBytes, used + line->size() + 2);
    if (line->empty())
      return fields;
    if ((line->front() == ' ' || line->front() == '\t') && !fields.empty()) {
      // An obsolete folded continuation line: part of the previous value.
      fields.back().second += " " + std::string(trimHttpSpace(*line));
      continue;
    }
    const size_t colon = line->find(':');
    if (colon == std::string::npos || !isHttpToken(std::string_view(*line).substr(0, colon)))
      return makeError(ErrorCode::kParse, fmt::format("malformed answer {} line", what));
    fields.emplace_back(line->substr(0, colon),
                        std::string(trimHttpSpace(std::string_view(*line).substr(colon + 1))));
  }
}

Result<HttpConnection::Framing> HttpConnection::readHead(std::string_view method,
                                                         const Waits& waits, HttpResponse& res) {
  bool http10 = false;
  for (;;) {
    auto line = readLine(waits, kHttpMaxHeaderBytes);
    if (!line.ok())
      return line.error();
    if (!parseStatusLine(*line, &res.status, &http10))
      return makeError(ErrorCode::kParse,
                       fmt::format("malformed status line '{}'", line->substr(0, 80)));
    auto fields = readFields(waits, "headers");
    if (!fields.ok())
      return fields.error();
    res.headers = std::move(*fields);
    if (res.status == 101)
      return makeError(ErrorCode::kUnsupported, "server switched protocols");
    if (res.status >= 200)
      return framingOf(method, http10, res);
    // An interim answer (100 Continue, 103 Early Hints): the real one follows.
  }
}

Result<HttpConnection::Framing> HttpConnection::framingOf(std::string_view method, bool http10,
                                                          const HttpResponse& res) {
  Framing f;
  const std::string connection = res.header("connection");
  f.keep_alive =
      http10 ? hasHttpToken(connection, "keep-alive") : !hasHttpToken(connection, "close");
  if (method == "HEAD" || res.status == 204 || res.status == 304)
    return f;
  const std::string coding = res.header("transfer-encoding");
  if (!coding.empty()) {
    if (!equalsIgnoreCase(trimHttpSpace(coding), "chunked"))
      return makeError(ErrorCode::kUnsupported,
                       fmt::format("unsupported transfer-encoding '{}'", coding));
    f.kind = Framing::Kind::kChunked;
    return f;
  }
  if (!hasHeader(res.headers, "content-length")) {
    f.kind = Framing::Kind::kUntilClose;
    return f;
  }
  auto length = parseContentLength(res.headers);
  if (!length.ok())
    return length.error();
  f.kind = Framing::Kind::kLength;
  f.length = *length;
  return f;
}

Status HttpConnection::readBody(const Framing& framing, const Waits& waits,
                                const HttpBodySink& on_body, HttpResponse& res) {
  switch (framing.kind) {
    case Framing::Kind::kNone:
      return okStatus();
    case Framing::Kind::kLength:
      if (!on_body && framing.length > kHttpMaxBodyBytes)
        return makeError(ErrorCode::kUnsupported,
                         fmt::format("answer body of {} bytes exceeds {} bytes", framing.length,
                                     kHttpMaxBodyBytes));
      return readExactly(framing.length, waits, on_body, res);
    case Framing::Kind::kChunked:
      return readChunked(waits, on_body, res);
    case Framing::Kind::kUntilClose:
      break;
  }
  for (;;) {
    auto delivered = deliver(buf_, on_body, res);
    buf_.clear();
    if (!delivered.ok() || !res.complete)
      return delivered;
    auto more = readMore(waits);
    if (!more.ok())
      return more.error();
    if (!*more)
      return okStatus();
  }
}

Status HttpConnection::readChunked(const Waits& waits, const HttpBodySink& on_body,
                                   HttpResponse& res) {
  for (;;) {
    auto line = readLine(waits, kMaxChunkLine);
    if (!line.ok())
      return line.error();
    auto size = parseChunkSize(*line);
    if (!size)
      return makeError(ErrorCode::kParse,
                       fmt::format("malformed chunk size '{}'", line->substr(0, 40)));
    if (*size == 0) {
      // The last chunk; then trailer fields (etcd's gateway sends some) up to an empty line.
      auto trailers = readFields(waits, "trailers");
      if (!trailers.ok())
        return trailers.error();
      res.trailers = std::move(*trailers);
      return okStatus();
    }
    auto data = readExactly(*size, waits, on_body, res);
    if (!data.ok() || !res.complete)
      return data;
    auto end = readLine(waits, 2);
    if (!end.ok())
      return end.error();
    if (!end->empty())
      return makeError(ErrorCode::kParse, "chunk data is longer than its size");
  }
}

Status HttpConnection::readExactly(size_t n, const Waits& waits, const HttpBodySink& on_body,
                                   HttpResponse& res) {
  while (n > 0) {
    if (buf_.empty()) {
      auto more = readMore(waits);
      if (!more.ok())
        return more.error();
      if (!*more)
        return closedError(fmt::format("with {} body bytes missing", n));
    }
    const size_t take = std::min(n, buf_.size());
    auto delivered = deliver(std::string_view(buf_).substr(0, take), on_body, res);
    buf_.erase(0, take);
    n -= take;
    if (!delivered.ok() || !res.complete)
      return delivered;
  }
  return okStatus();
}

Status HttpConnection::deliver(std::string_view piece, const HttpBodySink& on_body,
                               HttpResponse& res) {
  if (piece.empty())
    return okStatus();
  if (on_body) {
    if (!on_body(piece))
      res.complete = false;
    return okStatus();
  }
  if (res.body.size() + piece.size() > kHttpMaxBodyBytes)
    return makeError(ErrorCode::kUnsupported,
                     fmt::format("answer body exceeds {} bytes", kHttpMaxBodyBytes));
  res.body.append(piece);
  return okStatus();
}

}  // namespace pgf
