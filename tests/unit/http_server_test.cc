#include "common/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
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

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
};

std::string bodyOf(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void startServer(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(
        [this](const HttpRequest& req) {
          std::lock_guard lk(mu_);
          ++calls_;
          last_ = req;
          if (req.path == "/throw")
            throw std::runtime_error("boom");
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
    EXPECT_NE(bodyOf(res).find("\"error\""), std::string::npos);
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
