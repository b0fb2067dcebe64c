#include "common/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace pgf {
namespace {

using SteadyClock = std::chrono::steady_clock;

// An error answer that never reaches the handler: a short JSON body, like the API's own errors.
// The sentence goes in "description": the Open Service Broker API keeps "error" for CamelCase
// codes, and pgfleetctl reads either.
HttpReply errorReply(int status, std::string_view message) {
  HttpReply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = fmt::format("{{\"description\": \"{}\"}}", message);
  return r;
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name)
      return v;
  return "";
}

HttpServer::HttpServer(Handler handler, HttpServerOptions options)
    : handler_(std::move(handler)), options_(options) {}

HttpServer::~HttpServer() {
  stop();
}

Status HttpServer::start(const std::string& host, int port) {
  if (listen_fd_ >= 0)
    return makeError(ErrorCode::kInternal, "http server: already started");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0)
    return makeError(ErrorCode::kIo,
                     fmt::format("cannot resolve listen address {}: {}", host, gai_strerror(rc)));
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    // SO_REUSEADDR allows a quick restart; no SO_REUSEPORT, which would let a second agent bind
    // the same port and silently share the health checks with us.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    // Wake up for a connection only once its request has arrived: one wake-up per health check
    // instead of two. A connection that sends nothing is handed over after this many seconds.
    int defer_seconds =
        static_cast<int>(std::max<long long>(1, options_.read_timeout.count() / 1000));
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_seconds, sizeof defer_seconds);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 128) == 0)
      break;
    last_error = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  if (fd < 0)
    return makeError(ErrorCode::kIo,
                     fmt::format("cannot listen on {}:{}: {}", host, port, last_error));
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    stop();
    return makeError(ErrorCode::kIo, fmt::format("http server: {}", err));
  }
  listen_fd_ = fd;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.u64 = kWakeTag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  stop_ = false;
  thread_ = std::thread([this] { run(); });
  return okStatus();
}

void HttpServer::stop() {
  stop_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable())
    thread_.join();
  for (auto& [id, c] : connections_)
    ::close(c.fd);
  connections_.clear();
  // Deferred replies return within a bounded time by contract; they still write to wake_fd_, so
  // it stays open until they are joined. What they answer has nobody to go to any more.
  for (auto& [id, worker] : workers_)
    worker.join();
  workers_.clear();
  {
    std::lock_guard lock(done_mu_);
    done_.clear();
  }
  for (int* fd : {&listen_fd_, &epoll_fd_, &wake_fd_}) {
    if (*fd >= 0)
      ::close(*fd);
    *fd = -1;
  }
  port_ = 0;
}

void HttpServer::run() {
  std::vector<epoll_event> events(64);
  while (!stop_) {
    // Sleep until something happens or the earliest connection deadline; forever when idle.
    int timeout_ms = -1;
    auto now = SteadyClock::now();
    for (const auto& [id, c] : connections_) {
      if (c.parked)
        continue;
      auto left = std::chrono::duration_cast<Millis>(c.deadline - now).count() + 1;
      left = std::max<long long>(left, 0);
      if (timeout_ms < 0 || left < timeout_ms)
        timeout_ms = static_cast<int>(std::min<long long>(left, 60000));
    }
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("http server: epoll_wait: {}", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t count = 0;
        [[maybe_unused]] auto got = read(wake_fd_, &count, sizeof count);
        collectDeferred();
        continue;
      }
      if (tag == kListenTag) {
        acceptAll();
        continue;
      }
      // Tagged by id, not fd: an event still queued for a closed connection never reaches a new
      // one that got the same descriptor.
      auto it = connections_.find(tag);
      if (it == connections_.end())
        continue;
      Connection& c = it->second;
      const bool failed = (events[i].events & (EPOLLERR | EPOLLHUP)) != 0;
      bool keep;
      if (c.parked)
        keep = !failed;  // the client reset the connection: its deferred answer will be dropped
      else
        keep = c.writing ? onWritable(c) : onReadable(c);
      if (keep && failed && !c.writing)
        keep = false;
      if (!keep)
        closeConnection(tag);
    }
    // Drop connections whose peer did not finish in time.
    now = SteadyClock::now();
    std::vector<uint64_t> expired;
    for (const auto& [id, c] : connections_)
      if (!c.parked && c.deadline <= now)
        expired.push_back(id);
    for (uint64_t id : expired)
      closeConnection(id);
  }
}

void HttpServer::acceptAll() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::warn("http server: accept: {}", std::strerror(errno));
      return;
    }
    if (connections_.size() >= options_.max_connections) {
      ::close(fd);
      continue;
    }
    const uint64_t id = next_id_++;
    Connection& c = connections_[id];
    c.id = id;
    c.fd = fd;
    c.deadline = SteadyClock::now() + options_.read_timeout;
    // The listening socket defers accepting until data arrived, and health checks send their
    // whole request at once: most connections are answered and closed right here, without ever
    // joining the epoll set.
    if (!onReadable(c)) {
      closeConnection(id);
      continue;
    }
    if (!c.registered && !watch(c, EPOLLIN | EPOLLRDHUP))
      closeConnection(id);
  }
}

bool HttpServer::watch(Connection& c, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = c.id;
  if (epoll_ctl(epoll_fd_, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev) != 0)
    return false;
  c.registered = true;
  return true;
}

void HttpServer::closeConnection(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end())
    return;
  ::close(it->second.fd);  // also leaves the epoll set: the descriptor is not shared
  connections_.erase(it);
}

bool HttpServer::onReadable(Connection& c) {
  const int fd = c.fd;
  char buf[8192];
  bool peer_closed = false;
  while (true) {
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    if (got > 0) {
      c.in.append(buf, static_cast<size_t>(got));
      // A short read took everything there was: parse it rather than ask again for EAGAIN.
      if (static_cast<size_t>(got) < sizeof buf ||
          c.in.size() > options_.max_header_bytes + options_.max_body_bytes)
        break;
      continue;
    }
    if (got == 0) {
      peer_closed = true;
      break;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      break;
    return false;
  }

  auto header_end = c.in.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    if (c.in.size() > options_.max_header_bytes) {
      answer(c, errorReply(431, "request header too large"), false);
      return onWritable(c);
    }
    return !peer_closed;
  }
  if (header_end > options_.max_header_bytes) {
    answer(c, errorReply(431, "request header too large"), false);
    return onWritable(c);
  }

  HttpRequest req;
  std::string_view head(c.in.data(), header_end);
  auto line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
    answer(c, errorReply(400, "malformed request line"), false);
    return onWritable(c);
  }
  req.method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (req.method.empty() || (version != "HTTP/1.1" && version != "HTTP/1.0") ||
      !parseRequestTarget(target, &req.path, &req.query)) {
    answer(c, errorReply(400, "malformed request line"), false);
    return onWritable(c);
  }
  req.raw_path = std::string(target.substr(0, target.find('?')));
  std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!rest.empty()) {
    auto eol = rest.find("\r\n");
    std::string_view h = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
    auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      answer(c, errorReply(400, "malformed header"), false);
      return onWritable(c);
    }
    req.headers.emplace_back(lowerAscii(trimHttpSpace(h.substr(0, colon))),
                             std::string(trimHttpSpace(h.substr(colon + 1))));
  }
  const bool head_request = req.method == "HEAD";
  if (!req.header("transfer-encoding").empty()) {
    answer(c, errorReply(411, "a request body needs Content-Length"), head_request);
    return onWritable(c);
  }
  size_t length = 0;
  if (std::string cl = req.header("content-length"); !cl.empty()) {
    auto parsed = parseHttpLength(cl);
    if (!parsed) {
      answer(c, errorReply(400, "invalid Content-Length"), head_request);
      return onWritable(c);
    }
    if (*parsed > options_.max_body_bytes) {
      answer(c, errorReply(413, "request body too large"), head_request);
      return onWritable(c);
    }
    length = *parsed;
  }
  const size_t body_start = header_end + 4;
  if (c.in.size() < body_start + length) {
    if (peer_closed)
      return false;
    if (!c.sent_continue && equalsIgnoreCase(req.header("expect"), "100-continue")) {
      c.sent_continue = true;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      [[maybe_unused]] auto n = send(fd, kContinue.data(), kContinue.size(), MSG_NOSIGNAL);
    }
    return true;
  }
  req.body = c.in.substr(body_start, length);

  HttpReply reply;
  try {
    reply = handler_(req);
  } catch (const std::exception& e) {
    reply = errorReply(500, "internal error");
    spdlog::error("http server: handler failed on {} {}: {}", req.method, req.path, e.what());
  }
  if (reply.deferred)
    return park(c, std::move(reply.deferred), head_request, req.method + " " + req.path);
  answer(c, reply, head_request);
  return onWritable(c);
}

void HttpServer::answer(Connection& c, const HttpReply& reply, bool head) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", reply.status, httpReasonPhrase(reply.status));
  for (const auto& [name, value] : reply.headers)
    out += fmt::format("{}: {}\r\n", name, value);
  if (!reply.content_type.empty())
    out += fmt::format("Content-Type: {}\r\n", reply.content_type);
  out += fmt::format("Content-Length: {}\r\nConnection: close\r\n\r\n", reply.body.size());
  if (!head)
    out += reply.body;
  c.out = std::move(out);
  c.out_pos = 0;
  c.writing = true;
  c.in.clear();
  c.deadline = SteadyClock::now() + options_.write_timeout;
}

bool HttpServer::onWritable(Connection& c) {
  const int fd = c.fd;
  while (c.out_pos < c.out.size()) {
    ssize_t sent = send(fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
    if (sent > 0) {
      c.out_pos += static_cast<size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR)
      continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return watch(c, EPOLLOUT);
    return false;
  }
  // The whole answer is out: the caller closes (the peer reads it to the end, then sees the FIN).
  return false;
}

// A deferred reply keeps its connection in connections_, parked: out of the deadline checks, and
// in the epoll set with no events, where only errors and hang-ups are reported (epoll always
// reports those), so a connection the client reset is closed at once. A client that merely
// closed its side is not noticed before the answer is written; that write then goes nowhere,
// quietly. Half-closing after the request is legitimate, so EPOLLRDHUP does not end a parked one.
//
// The worker's answer comes back through done_ and wake_fd_, tagged with the connection id; the
// serving thread joins the worker as it collects the answer, so finished threads never pile up,
// and a worker counts against max_deferred until then.
bool HttpServer::park(Connection& c, std::function<HttpReply()> work, bool head,
                      const std::string& what) {
  if (workers_.size() >= options_.max_deferred) {
    spdlog::warn("http server: {} refused: {} slow requests already in progress", what,
                 workers_.size());
    answer(c, errorReply(503, "too many slow requests in progress"), head);
    return onWritable(c);
  }
  if (!watch(c, 0))
    return false;
  c.parked = true;
  c.head = head;
  c.in.clear();
  const uint64_t id = c.id;
  try {
    workers_.emplace(
        id, std::thread([this, id, work = std::move(work), what] { runDeferred(id, work, what); }));
  } catch (const std::system_error& e) {
    spdlog::error("http server: cannot start a thread for {}: {}", what, e.what());
    c.parked = false;
    answer(c, errorReply(503, "cannot start a slow request now"), head);
    return onWritable(c);
  }
  return true;
}

void HttpServer::runDeferred(uint64_t connection_id, const std::function<HttpReply()>& work,
                             const std::string& what) {
  HttpReply reply;
  try {
    reply = work();
    if (reply.deferred) {
      spdlog::error("http server: deferred reply to {} asked to be deferred again", what);
      reply = errorReply(500, "internal error");
    }
  } catch (const std::exception& e) {
    spdlog::error("http server: deferred reply to {} failed: {}", what, e.what());
    reply = errorReply(500, "internal error");
  } catch (...) {
    // A thread of its own: anything escaping would end the process.
    spdlog::error("http server: deferred reply to {} failed", what);
    reply = errorReply(500, "internal error");
  }
  {
    std::lock_guard lock(done_mu_);
    done_.push_back(DeferredResult{connection_id, std::move(reply)});
  }
  uint64_t one = 1;
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

void HttpServer::collectDeferred() {
  std::vector<DeferredResult> done;
  {
    std::lock_guard lock(done_mu_);
    done.swap(done_);
  }
  for (DeferredResult& result : done) {
    // The worker has queued its answer: it ends a moment later, so the join waits no longer.
    if (auto w = workers_.find(result.connection_id); w != workers_.end()) {
      w->second.join();
      workers_.erase(w);
    }
    auto it = connections_.find(result.connection_id);
    if (it == connections_.end() || !it->second.parked)
      continue;  // the client has gone meanwhile
    Connection& c = it->second;
    c.parked = false;
    answer(c, result.reply, c.head);
    if (!onWritable(c))
      closeConnection(c.id);
  }
}

}  // namespace pgf
