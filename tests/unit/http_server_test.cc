#include "common/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace pgf {
namespace {

using namespace std::chrono_literals;

// A raw client socket, so that tests control exactly what is sent and when.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0)
      close(fd_);
  }
  bool connected() const { return connected_; }
  void send(const std::string& data) {
    ASSERT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }
  // Everything until the server closes the connection, or until `timeout`.
  std::string readAll(std::chrono::milliseconds timeout = 2000ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
        break;
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // Reads until `needle` appears (or timeout), without waiting for the close.
  std::string readUntil(const std::string& needle, std::chrono::milliseconds timeout = 2000ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (out.find(needle) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0)
        break;
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  bool closedByServer() const { return closed_; }
  // Closes the client's end: with a reset (RST) when `reset`, else with an ordinary FIN.
  void hangUp(bool reset) {
    if (reset) {
      linger l{1, 0};
      setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
};

std::string bodyOf(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

// Holds the tests' deferred replies until the test lets them go, one at a time or all together.
class Gate {
 public:
  // On a worker: counts a deferred reply as started, then waits to be let through. Bounded, so
  // that a failing test cannot hold stop() for long; false when that bound passed.
  bool enter() {
    std::unique_lock lk(mu_);
    ++started_;
    cv_.notify_all();
    bool passed = cv_.wait_for(lk, 10s, [&] { return open_ || permits_ > 0; });
    if (passed && !open_)
      --permits_;
    ++finished_;
    cv_.notify_all();
    return passed;
  }
  void letOneThrough() {
    std::lock_guard lk(mu_);
    ++permits_;
    cv_.notify_all();
  }
  void open() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool waitStarted(int n, std::chrono::milliseconds timeout = 2000ms) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return started_ >= n; });
  }
  int started() {
    std::lock_guard lk(mu_);
    return started_;
  }
  int finished() {
    std::lock_guard lk(mu_);
    return finished_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int permits_ = 0;
  int started_ = 0;
  int finished_ = 0;
};

class HttpServerTest : public ::testing::Test {
 protected:
  // Deferred replies still running would use gate_ after the fixture is gone: let them finish.
  void TearDown() override {
    gate_.open();
    server_.reset();
  }

  void startServer(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(
        [this](const HttpRequest& req) {
          std::lock_guard lk(mu_);
          ++calls_;
          last_ = req;
          if (req.path == "/throw")
            throw std::runtime_error("boom");
          if (req.path.rfind("/slow", 0) == 0)
            return slowReply(req.path);
          HttpReply r;
          r.status = req.path == "/missing" ? 404 : 200;
          r.content_type = "text/plain";
          r.body = "you asked " + req.method + " " + req.path;
          r.headers["X-Test"] = "yes";
          return r;
        },
        options);
    ASSERT_TRUE(server_->start("127.0.0.1", 0).ok());
    ASSERT_GT(server_->port(), 0);
  }
  // The deferred replies: /slow waits at the gate, the others return at once, throw, or ask to be
  // deferred again.
  HttpReply slowReply(const std::string& path) {
    HttpReply r;
    r.status = 418;  // ignored, as are the other fields, once `deferred` is set
    r.body = "not this";
    if (path == "/slow") {
      r.deferred = [this] {
        HttpReply slow;
        slow.status = gate_.enter() ? 201 : 504;
        slow.content_type = "text/plain";
        slow.body = "slow done";
        slow.headers["X-Slow"] = "yes";
        return slow;
      };
    } else if (path == "/slow-fast") {
      r.deferred = [] {
        HttpReply fast;
        fast.content_type = "text/plain";
        fast.body = "fast done";
        return fast;
      };
    } else if (path == "/slow-throw") {
      r.deferred = []() -> HttpReply { throw std::runtime_error("slow boom"); };
    } else {
      r.deferred = [] {
        HttpReply again;
        again.deferred = [] { return HttpReply{}; };
        return again;
      };
    }
    return r;
  }
  // Asks /slow-fast until the server takes a deferred request again (not 503). With
  // max_deferred = 1 that means it has collected every earlier worker and dealt with its answer.
  bool waitForAFreeDeferredSlot(std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      RawClient probe(server_->port());
      probe.send("GET /slow-fast HTTP/1.1\r\n\r\n");
      std::string res = probe.readAll();
      if (res.rfind("HTTP/1.1 200", 0) == 0)
        return true;
      if (res.rfind("HTTP/1.1 503", 0) != 0) {
        ADD_FAILURE() << "unexpected answer to the probe: " << res;
        return false;
      }
    }
    return false;
  }
  int calls() {
    std::lock_guard lk(mu_);
    return calls_;
  }
  HttpRequest last() {
    std::lock_guard lk(mu_);
    return last_;
  }

  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  int calls_ = 0;
  HttpRequest last_;
  Gate gate_;
};

TEST_F(HttpServerTest, AnswersARequestAndCloses) {
  startServer();
  RawClient c(server_->port());
  ASSERT_TRUE(c.connected());
  c.send("GET /a%20b?lag=16MB&tag_x=1&tag_x=2&q=a+b HTTP/1.1\r\nHost: x\r\nX-Thing:  v  \r\n\r\n");
  std::string res = c.readAll();
  EXPECT_TRUE(c.closedByServer());
  EXPECT_EQ(res.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << res;
  EXPECT_NE(res.find("Content-Type: text/plain\r\n"), std::string::npos);
  EXPECT_NE(res.find("Content-Length: 18\r\n"), std::string::npos);
  EXPECT_NE(res.find("X-Test: yes\r\n"), std::string::npos);
  EXPECT_NE(res.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(bodyOf(res), "you asked GET /a b");
  HttpRequest req = last();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/a b");
  EXPECT_EQ(req.header("x-thing"), "v");
  EXPECT_EQ(req.header("host"), "x");
  ASSERT_EQ(req.query.count("tag_x"), 2u);
  EXPECT_EQ(req.query.find("lag")->second, "16MB");
  EXPECT_EQ(req.query.find("q")->second, "a b");
}

TEST_F(HttpServerTest, HeadGetsHeadersWithoutBody) {
  startServer();
  RawClient c(server_->port());
  c.send("HEAD /primary HTTP/1.1\r\n\r\n");
  std::string res = c.readAll();
  EXPECT_EQ(res.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << res;
  EXPECT_EQ(bodyOf(res), "");
  EXPECT_EQ(last().method, "HEAD");
}

TEST_F(HttpServerTest, StatusCodesPassThrough) {
  startServer();
  RawClient c(server_->port());
  c.send("OPTIONS /missing HTTP/1.0\r\n\r\n");
  EXPECT_EQ(c.readAll().rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u);
}

TEST_F(HttpServerTest, BodyArrivingInPiecesIsAssembled) {
  startServer();
  RawClient c(server_->port());
  c.send("POST /restart HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello");
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(calls(), 0);
  c.send(" world");
  std::string res = c.readAll();
  EXPECT_EQ(res.rfind("HTTP/1.1 200", 0), 0u) << res;
  EXPECT_EQ(last().body, "hello world");
}

TEST_F(HttpServerTest, ExpectContinueGetsA100First) {
  startServer();
  RawClient c(server_->port());
  c.send("POST /x HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(c.readUntil("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  c.send("abc");
  EXPECT_NE(c.readAll().find("HTTP/1.1 200 OK"), std::string::npos);
  EXPECT_EQ(last().body, "abc");
}

TEST_F(HttpServerTest, MalformedRequestsAre400AndNeverReachTheHandler) {
  startServer();
  for (std::string bad : {"NONSENSE\r\n\r\n", "GET /x HTTP/2.0\r\n\r\n", "GET x HTTP/1.1\r\n\r\n",
                          "GET /%zz HTTP/1.1\r\n\r\n", "GET /x HTTP/1.1\r\nno colon here\r\n\r\n",
                          "POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                          "POST /x HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n"}) {
    RawClient c(server_->port());
    c.send(bad);
    std::string res = c.readAll();
    EXPECT_EQ(res.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << bad << " -> " << res;
    EXPECT_NE(bodyOf(res).find("\"description\""), std::string::npos);
  }
  EXPECT_EQ(calls(), 0);
}

TEST_F(HttpServerTest, LimitsHeaderAndBodySizes) {
  HttpServerOptions o;
  o.max_header_bytes = 1024;
  o.max_body_bytes = 100;
  startServer(o);
  {
    RawClient c(server_->port());
    c.send("GET /x HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
    EXPECT_EQ(c.readAll().rfind("HTTP/1.1 431", 0), 0u);
  }
  {
    RawClient c(server_->port());
    c.send("POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
    EXPECT_EQ(c.readAll().rfind("HTTP/1.1 413", 0), 0u);
  }
  {
    RawClient c(server_->port());
    c.send("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    EXPECT_EQ(c.readAll().rfind("HTTP/1.1 411", 0), 0u);
  }
  EXPECT_EQ(calls(), 0);
}

TEST_F(HttpServerTest, AHandlerExceptionIsA500) {
  startServer();
  RawClient c(server_->port());
  c.send("GET /throw HTTP/1.1\r\n\r\n");
  EXPECT_EQ(c.readAll().rfind("HTTP/1.1 500 Internal Server Error\r\n", 0), 0u);
  RawClient again(server_->port());
  again.send("GET /fine HTTP/1.1\r\n\r\n");
  EXPECT_EQ(again.readAll().rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(HttpServerTest, ASlowClientNeitherBlocksOthersNorStaysForever) {
  HttpServerOptions o;
  o.read_timeout = 300ms;
  startServer(o);
  RawClient slow(server_->port());
  slow.send("GET /slow HTTP/1.1\r\n");  // never finishes its headers
  RawClient quick(server_->port());
  quick.send("GET /quick HTTP/1.1\r\n\r\n");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(bodyOf(quick.readAll()), "you asked GET /quick");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
  std::string res = slow.readAll(3000ms);
  EXPECT_TRUE(slow.closedByServer());
  EXPECT_EQ(res, "");
  EXPECT_EQ(calls(), 1);
}

TEST_F(HttpServerTest, ASecondServerCannotTakeTheSamePort) {
  startServer();
  HttpServer other([](const HttpRequest&) { return HttpReply{}; });
  auto st = other.start("127.0.0.1", server_->port());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
}

TEST_F(HttpServerTest, StopClosesOpenConnectionsAndIsIdempotent) {
  startServer();
  RawClient idle(server_->port());
  idle.send("GET /never");
  std::this_thread::sleep_for(20ms);
  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_EQ(server_->port(), 0);
  idle.readAll(1000ms);
  EXPECT_TRUE(idle.closedByServer());
  server_->stop();
}

TEST_F(HttpServerTest, ADeferredReplyWaitsWithoutHoldingUpOthers) {
  HttpServerOptions o;
  o.read_timeout = 300ms;
  startServer(o);
  RawClient slow(server_->port());
  slow.send("POST /slow HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
  RawClient slow_head(server_->port());
  slow_head.send("HEAD /slow HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(gate_.waitStarted(2));

  // Health checks are answered at once meanwhile.
  RawClient quick(server_->port());
  quick.send("GET /quick HTTP/1.1\r\n\r\n");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(bodyOf(quick.readAll()), "you asked GET /quick");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
  // No read timeout for a parked connection: one accepted after both of them, which never
  // finishes its request, is dropped for its timeout, and they are still there.
  RawClient late(server_->port());
  late.send("GET /late HTTP/1.1\r\n");
  EXPECT_EQ(late.readAll(3000ms), "");
  EXPECT_TRUE(late.closedByServer());
  EXPECT_EQ(gate_.finished(), 0);

  gate_.open();
  std::string res = slow.readAll();
  EXPECT_TRUE(slow.closedByServer());
  EXPECT_EQ(res.rfind("HTTP/1.1 201 Created\r\n", 0), 0u) << res;
  EXPECT_NE(res.find("Content-Type: text/plain\r\n"), std::string::npos);
  EXPECT_NE(res.find("Content-Length: 9\r\n"), std::string::npos);
  EXPECT_NE(res.find("X-Slow: yes\r\n"), std::string::npos);
  EXPECT_NE(res.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(bodyOf(res), "slow done");
  std::string head = slow_head.readAll();
  EXPECT_EQ(head.rfind("HTTP/1.1 201 Created\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Length: 9\r\n"), std::string::npos);
  EXPECT_EQ(bodyOf(head), "");
}

TEST_F(HttpServerTest, DeferredRepliesBeyondTheLimitGetA503) {
  HttpServerOptions o;
  o.max_deferred = 2;
  startServer(o);
  RawClient first(server_->port());
  first.send("POST /slow HTTP/1.1\r\n\r\n");
  RawClient second(server_->port());
  second.send("POST /slow HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(gate_.waitStarted(2));

  RawClient extra(server_->port());
  extra.send("POST /slow HTTP/1.1\r\n\r\n");
  auto t0 = std::chrono::steady_clock::now();
  std::string refused = extra.readAll();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
  EXPECT_EQ(refused.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << refused;
  EXPECT_NE(refused.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_EQ(bodyOf(refused), "{\"description\": \"too many slow requests in progress\"}");
  EXPECT_EQ(gate_.started(), 2);

  gate_.open();
  EXPECT_EQ(bodyOf(first.readAll()), "slow done");
  EXPECT_EQ(bodyOf(second.readAll()), "slow done");
  // Both workers were joined before their answers went out: the slots are free again.
  RawClient after(server_->port());
  after.send("POST /slow HTTP/1.1\r\n\r\n");
  EXPECT_EQ(bodyOf(after.readAll()), "slow done");
}

TEST_F(HttpServerTest, AFailingDeferredReplyIsA500) {
  startServer();
  for (std::string path : {"/slow-throw", "/slow-again"}) {
    RawClient c(server_->port());
    c.send("GET " + path + " HTTP/1.1\r\n\r\n");
    std::string res = c.readAll();
    EXPECT_EQ(res.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0), 0u) << path << ": " << res;
    EXPECT_NE(res.find("Content-Type: application/json\r\n"), std::string::npos);
    EXPECT_EQ(bodyOf(res), "{\"description\": \"internal error\"}");
  }
  RawClient again(server_->port());
  again.send("GET /fine HTTP/1.1\r\n\r\n");
  EXPECT_EQ(bodyOf(again.readAll()), "you asked GET /fine");
}

TEST_F(HttpServerTest, AnAnswerForAClientThatLeftIsDropped) {
  HttpServerOptions o;
  o.max_deferred = 1;
  startServer(o);
  // A request still arriving while the others' answers come back receives its own answer only.
  RawClient waiting(server_->port());
  waiting.send("GET /mine HTTP/1.1\r\n");

  // One client resets the connection, which the server notices at once; the other only closes
  // its end, which the server notices when it writes the answer.
  for (bool reset : {true, false}) {
    SCOPED_TRACE(reset ? "reset" : "closed");
    const int before = gate_.started();
    RawClient gone(server_->port());
    gone.send("POST /slow HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(gate_.waitStarted(before + 1));
    gone.hangUp(reset);
    // Likely to get the descriptor the reset client had, with an id of its own.
    RawClient other(server_->port());
    other.send("GET /other HTTP/1.1\r\n");
    gate_.letOneThrough();
    ASSERT_TRUE(waitForAFreeDeferredSlot());
    other.send("\r\n");
    std::string res = other.readAll();
    EXPECT_EQ(res.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << res;
    EXPECT_EQ(bodyOf(res), "you asked GET /other");
  }
  waiting.send("\r\n");
  std::string res = waiting.readAll();
  EXPECT_EQ(res.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << res;
  EXPECT_EQ(bodyOf(res), "you asked GET /mine");
}

TEST_F(HttpServerTest, StopWaitsForARunningDeferredReply) {
  startServer();
  RawClient c(server_->port());
  c.send("POST /slow HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(gate_.waitStarted(1));
  auto stopped = std::async(std::launch::async, [this] { server_->stop(); });
  // The worker is still at the gate: stop() cannot have returned.
  EXPECT_EQ(stopped.wait_for(100ms), std::future_status::timeout);
  gate_.open();
  ASSERT_EQ(stopped.wait_for(5000ms), std::future_status::ready);
  EXPECT_EQ(gate_.finished(), 1);
  // The connection was closed by stop(); the late answer went nowhere.
  EXPECT_EQ(c.readAll(), "");
  EXPECT_TRUE(c.closedByServer());
  EXPECT_EQ(server_->port(), 0);
}

TEST(HttpRequestTarget, DecodesPathAndQuery) {
  std::string path;
  std::multimap<std::string, std::string> q;
  ASSERT_TRUE(parseRequestTarget("/replica?lag=1%20MB&&x&y=", &path, &q));
  EXPECT_EQ(path, "/replica");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q.find("lag")->second, "1 MB");
  EXPECT_EQ(q.find("x")->second, "");
  EXPECT_EQ(q.find("y")->second, "");
  EXPECT_FALSE(parseRequestTarget("replica", &path, &q));
  EXPECT_FALSE(parseRequestTarget("/a%2", &path, &q));
  EXPECT_FALSE(parseRequestTarget("/a?b=%g0", &path, &q));
  ASSERT_TRUE(parseRequestTarget("/a+b", &path, &q));
  EXPECT_EQ(path, "/a+b");
}

}  // namespace
}  // namespace pgf
