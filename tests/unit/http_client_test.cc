// HttpConnection against hand-written answers from a raw-socket server on loopback: body framings
// (length, chunked with trailers, until close), keep-alive, deadlines, limits, and abort().
#include "common/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace pgf {
namespace {

using std::chrono::steady_clock;

long long elapsedMs(steady_clock::time_point since) {
  return std::chrono::duration_cast<Millis>(steady_clock::now() - since).count();
}

MonoTime in(Millis d) {
  return steady_clock::now() + d;
}

// false when the peer is gone.
bool sendText(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads one request (head and Content-Length body) from `fd`; "" when the peer closed first.
std::string readRequest(int fd) {
  std::string in;
  char buf[4096];
  size_t want = std::string::npos;
  for (;;) {
    const size_t end = in.find("\r\n\r\n");
    if (want == std::string::npos && end != std::string::npos) {
      want = end + 4;
      const size_t cl = in.find("Content-Length: ");
      if (cl != std::string::npos && cl < end)
        want += std::stoul(in.substr(cl + 16));
    }
    if (want != std::string::npos && in.size() >= want)
      return in.substr(0, want);
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      return "";
    in.append(buf, static_cast<size_t>(n));
  }
}

// Blocks until the peer closes the connection (or the server shuts it down).
void waitForClose(int fd) {
  char buf[4096];
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
  }
}

// A loopback server that runs `handler` on every accepted connection, each in its own thread;
// the handler's return closes the connection. The destructor unblocks and joins everything.
class ScriptedServer {
 public:
  using Handler = std::function<void(int fd)>;

  explicit ScriptedServer(Handler handler, bool ipv6 = false) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (ipv6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
    }
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return;
    port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }

  ~ScriptedServer() {
    if (listen_fd_ >= 0)
      ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    if (acceptor_.joinable())
      acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : open_)
        ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_)
      t.join();
    if (listen_fd_ >= 0)
      ::close(listen_fd_);
  }

  bool listening() const { return port_ != 0; }
  int port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  void acceptLoop() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0)
        return;
      ++accepted_;
      std::lock_guard lock(mu_);
      open_.push_back(fd);
      workers_.emplace_back([this, fd] {
        handler_(fd);
        std::lock_guard inner(mu_);
        std::erase(open_, fd);
        ::close(fd);
      });
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> workers_;
  std::thread acceptor_;
};

// Answers every request on a connection with `answer`, until the client closes it.
ScriptedServer::Handler answerEach(std::string answer) {
  return [answer](int fd) {
    while (!readRequest(fd).empty())
      sendText(fd, answer);
  };
}

constexpr std::string_view kChunkedWithTrailers =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: application/json\r\n"
    "Trailer: Grpc-Trailer-Content-Type\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "a\r\n{\"code\":3,\r\n"
    "14;ext=1\r\n\"message\":\"bad key\"}\r\n"
    "0\r\n"
    "Grpc-Trailer-Content-Type: application/grpc\r\n"
    "\r\n";

TEST(HttpClientTest, SendsAWellFormedRequestAndReadsAContentLengthBody) {
  std::promise<std::string> seen;
  ScriptedServer server([&](int fd) {
    seen.set_value(readRequest(fd));
    sendText(fd,
             "HTTP/1.1 201 Created\r\nX-Thing:  spaced value \r\nContent-Length: 5\r\n\r\nhello");
    waitForClose(fd);
  });
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  auto res = http.request("POST", "/v3/kv/range", {{"Authorization", "tok"}}, R"({"k":1})",
                          in(Millis(2000)));
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->status, 201);
  EXPECT_EQ(res->body, "hello");
  EXPECT_EQ(res->header("x-thing"), "spaced value");
  EXPECT_EQ(res->header("missing"), "");
  EXPECT_TRUE(res->complete);
  EXPECT_TRUE(http.reusable());
  const std::string request = seen.get_future().get();
  EXPECT_EQ(request.rfind("POST /v3/kv/range HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << request;
  EXPECT_NE(request.find("\r\nAuthorization: tok\r\n"), std::string::npos) << request;
  EXPECT_NE(request.find("\r\nContent-Length: 7\r\n"), std::string::npos) << request;
  EXPECT_NE(request.find("\r\nConnection: keep-alive\r\n"), std::string::npos) << request;
  EXPECT_TRUE(request.ends_with("\r\n\r\n{\"k\":1}")) << request;
}

TEST(HttpClientTest, ChunkedBodyWithTrailersIsCompleteAndTheConnectionIsReused) {
  ScriptedServer server(answerEach(std::string(kChunkedWithTrailers)));
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  for (int i = 0; i < 3; ++i) {
    auto res = http.request("POST", "/v3/kv/put", {}, "{}", in(Millis(2000)));
    ASSERT_TRUE(res.ok()) << res.error().toString();
    EXPECT_EQ(res->status, 400);
    EXPECT_EQ(res->body, R"({"code":3,"message":"bad key"})");
    ASSERT_EQ(res->trailers.size(), 1u);
    EXPECT_EQ(res->trailers[0].first, "Grpc-Trailer-Content-Type");
    EXPECT_EQ(res->trailers[0].second, "application/grpc");
    EXPECT_TRUE(http.reusable());
  }
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpClientTest, ReconnectsWhenTheServerClosedTheIdleConnection) {
  ScriptedServer server([](int fd) {
    if (!readRequest(fd).empty())
      sendText(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    // returning closes the connection while the client keeps it in its pool
  });
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  for (int i = 0; i < 2; ++i) {
    auto res = http.request("GET", "/", {}, {}, in(Millis(2000)));
    ASSERT_TRUE(res.ok()) << i << ": " << res.error().toString();
    EXPECT_EQ(res->body, "ok");
    std::this_thread::sleep_for(Millis(50));  // lets the server's FIN arrive
  }
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpClientTest, ConnectionCloseAndHttp10AnswersAreNotReused) {
  ScriptedServer closing(
      answerEach("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"));
  ScriptedServer old(answerEach("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\ny"));
  ScriptedServer old_kept(
      answerEach("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nz"));
  ASSERT_TRUE(closing.listening() && old.listening() && old_kept.listening());
  HttpConnection a("127.0.0.1", closing.port());
  HttpConnection b("127.0.0.1", old.port());
  HttpConnection c("127.0.0.1", old_kept.port());
  for (auto* http : {&a, &b, &c}) {
    auto res = http->request("GET", "/", {}, {}, in(Millis(2000)));
    ASSERT_TRUE(res.ok()) << res.error().toString();
    EXPECT_EQ(res->body.size(), 1u);
  }
  EXPECT_FALSE(a.reusable());
  EXPECT_FALSE(b.reusable());
  EXPECT_TRUE(c.reusable());
}

TEST(HttpClientTest, ReadsABodyThatEndsWithTheConnection) {
  ScriptedServer server([](int fd) {
    readRequest(fd);
    sendText(fd, "HTTP/1.1 200 OK\r\n\r\nfirst ");
    std::this_thread::sleep_for(Millis(50));
    sendText(fd, "second");
  });
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  auto res = http.request("GET", "/", {}, {}, in(Millis(2000)));
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->body, "first second");
  EXPECT_FALSE(http.reusable());
}

TEST(HttpClientTest, AnswersWithoutBodyAndInterimAnswers) {
  ScriptedServer server(
      answerEach("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"));
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  auto res = http.request("DELETE", "/x", {}, {}, in(Millis(2000)));
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->status, 204);
  EXPECT_EQ(res->header("X-A"), "1");
  EXPECT_TRUE(res->body.empty());
  EXPECT_TRUE(http.reusable());
}

TEST(HttpClientTest, ServerClosingMidBodyIsAnError) {
  ScriptedServer by_length([](int fd) {
    readRequest(fd);
    sendText(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..");
  });
  ScriptedServer by_chunks([](int fd) {
    readRequest(fd);
    sendText(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  });
  ASSERT_TRUE(by_length.listening() && by_chunks.listening());
  for (int port : {by_length.port(), by_chunks.port()}) {
    HttpConnection http("127.0.0.1", port);
    auto res = http.request("GET", "/", {}, {}, in(Millis(2000)));
    ASSERT_FALSE(res.ok()) << port;
    EXPECT_EQ(res.error().code, ErrorCode::kIo) << res.error().toString();
    EXPECT_FALSE(http.reusable());
  }
}

TEST(HttpClientTest, SilentServerFailsAtTheDeadline) {
  ScriptedServer server([](int fd) { waitForClose(fd); });
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  const auto start = steady_clock::now();
  auto res = http.request("GET", "/", {}, {}, in(Millis(300)));
  const auto took = elapsedMs(start);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code, ErrorCode::kTimeout) << res.error().toString();
  EXPECT_GE(took, 290);
  EXPECT_LT(took, 1000);
}

TEST(HttpClientTest, IdleTimeoutCountsFromTheLastByteNotFromTheStart) {
  ScriptedServer server([](int fd) {
    readRequest(fd);
    sendText(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 6; ++i) {
      std::this_thread::sleep_for(Millis(100));
      sendText(fd, "1\r\nx\r\n");
    }
    waitForClose(fd);  // then silence
  });
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  std::string got;
  const auto start = steady_clock::now();
  auto res = http.request(
      "POST", "/v3/watch", {}, "{}", MonoTime::max(),
      [&](std::string_view piece) {
        got += piece;
        return true;
      },
      Millis(250));
  const auto took = elapsedMs(start);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code, ErrorCode::kTimeout) << res.error().toString();
  EXPECT_EQ(got, "xxxxxx");
  EXPECT_GE(took, 600 + 240);
  EXPECT_LT(took, 2000);
}

TEST(HttpClientTest, OversizedAnswersAreRefusedWithoutReadingThem) {
  ScriptedServer huge_header([](int fd) {
    readRequest(fd);
    sendText(fd, "HTTP/1.1 200 OK\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n");
    waitForClose(fd);
  });
  ScriptedServer many_headers([](int fd) {
    readRequest(fd);
    std::string head = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 5000; ++i)
      head += "X-H" + std::to_string(i) + ": 0123456789\r\n";
    sendText(fd, head + "\r\n");
    waitForClose(fd);
  });
  ScriptedServer huge_body([](int fd) {
    readRequest(fd);
    sendText(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\nxxxx");
    waitForClose(fd);
  });
  ASSERT_TRUE(huge_header.listening() && many_headers.listening() && huge_body.listening());
  for (int port : {huge_header.port(), many_headers.port(), huge_body.port()}) {
    HttpConnection http("127.0.0.1", port);
    const auto start = steady_clock::now();
    auto res = http.request("GET", "/", {}, {}, in(Millis(3000)));
    ASSERT_FALSE(res.ok()) << port;
    EXPECT_EQ(res.error().code, ErrorCode::kUnsupported) << res.error().toString();
    EXPECT_LT(elapsedMs(start), 1000) << res.error().toString();
  }
}

TEST(HttpClientTest, MalformedAnswersAreParseErrors) {
  const std::vector<std::string> answers = {
      "SSH-2.0-OpenSSH\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
  };
  for (const auto& answer : answers) {
    ScriptedServer server([&](int fd) {
      readRequest(fd);
      sendText(fd, answer);
      waitForClose(fd);
    });
    ASSERT_TRUE(server.listening());
    HttpConnection http("127.0.0.1", server.port());
    auto res = http.request("GET", "/", {}, {}, in(Millis(2000)));
    ASSERT_FALSE(res.ok()) << answer;
    EXPECT_EQ(res.error().code, ErrorCode::kParse) << answer << res.error().toString();
  }
}

TEST(HttpClientTest, RefusesRequestsThatWouldBreakTheFraming) {
  HttpConnection http("127.0.0.1", 1);  // never contacted: the checks come first
  const auto deadline = in(Millis(1000));
  EXPECT_EQ(http.request("GET", "/a b", {}, {}, deadline).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(http.request("GET", "/\r\nX: y", {}, {}, deadline).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(http.request("GE T", "/", {}, {}, deadline).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(http.request("GET", "/", {{"X", "a\r\nInjected: 1"}}, {}, deadline).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(http.request("GET", "/", {{"Bad Name", "v"}}, {}, deadline).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(http.request("POST", "/", {{"content-length", "3"}}, "abc", deadline).error().code,
            ErrorCode::kInvalidArgument);
}

TEST(HttpClientTest, RefusedConnectionFailsAtOnce) {
  int port = 0;
  {
    ScriptedServer gone([](int) {});  // binds a free port, then releases it
    port = gone.port();
  }
  HttpConnection http("127.0.0.1", port);
  const auto start = steady_clock::now();
  auto res = http.request("GET", "/", {}, {}, in(Millis(3000)));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code, ErrorCode::kIo) << res.error().toString();
  EXPECT_NE(res.error().message.find("refused"), std::string::npos) << res.error().message;
  EXPECT_LT(elapsedMs(start), 1000);
}

TEST(HttpClientTest, UnknownHostIsAnIoError) {
  HttpConnection http("no-such-host.invalid", 80);
  auto res = http.request("GET", "/", {}, {}, in(Millis(3000)));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code, ErrorCode::kIo) << res.error().toString();
}

TEST(HttpClientTest, LocalhostAndIpv6LoopbackWork) {
  ScriptedServer v4(answerEach("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv4"));
  ASSERT_TRUE(v4.listening());
  HttpConnection by_name("localhost", v4.port());
  auto res = by_name.request("GET", "/", {}, {}, in(Millis(2000)));
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->body, "v4");

  std::promise<std::string> seen;
  ScriptedServer v6(
      [&](int fd) {
        seen.set_value(readRequest(fd));
        sendText(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6");
        waitForClose(fd);
      },
      /*ipv6=*/true);
  if (!v6.listening())
    GTEST_SKIP() << "no IPv6 loopback here";
  HttpConnection by_v6("::1", v6.port());
  res = by_v6.request("GET", "/", {}, {}, in(Millis(2000)));
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->body, "v6");
  EXPECT_NE(seen.get_future().get().find("\r\nHost: [::1]:" + std::to_string(v6.port()) + "\r\n"),
            std::string::npos);
}

TEST(HttpClientTest, SinkReceivesTheStreamAndCanStopIt) {
  ScriptedServer server([](int fd) {
    readRequest(fd);
    sendText(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 100; ++i) {
      if (!sendText(fd, "7\r\n{\"n\":" + std::to_string(i % 10) + "}\r\n"))
        return;
      std::this_thread::sleep_for(Millis(10));
    }
    waitForClose(fd);
  });
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  std::string got;
  auto res =
      http.request("POST", "/v3/watch", {}, "{}", in(Millis(5000)), [&](std::string_view piece) {
        got += piece;
        return got.size() < 21;
      });
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->status, 200);
  EXPECT_FALSE(res->complete);
  EXPECT_TRUE(res->body.empty());
  EXPECT_EQ(got, R"({"n":0}{"n":1}{"n":2})");
  EXPECT_FALSE(http.reusable());
}

TEST(HttpClientTest, AbortFromAnotherThreadUnblocksAStreamPromptly) {
  ScriptedServer server([](int fd) {
    readRequest(fd);
    sendText(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
    waitForClose(fd);  // then nothing, for as long as the client stays
  });
  ASSERT_TRUE(server.listening());
  HttpConnection http("127.0.0.1", server.port());
  std::promise<void> first_piece;
  auto streaming = std::async(std::launch::async, [&] {
    bool told = false;
    return http.request("POST", "/v3/watch", {}, "{}", in(Millis(30000)), [&](std::string_view) {
      if (!told)
        first_piece.set_value();
      told = true;
      return true;
    });
  });
  ASSERT_EQ(first_piece.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  std::this_thread::sleep_for(Millis(100));  // the stream is now blocked waiting for more
  const auto start = steady_clock::now();
  http.abort();
  ASSERT_EQ(streaming.wait_for(std::chrono::seconds(2)), std::future_status::ready);
  EXPECT_LT(elapsedMs(start), 500);
  auto res = streaming.get();
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code, ErrorCode::kIo);
  EXPECT_EQ(res.error().message, "aborted");
  // An aborted connection refuses further requests at once.
  auto again = http.request("GET", "/", {}, {}, in(Millis(2000)));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, "aborted");
  EXPECT_EQ(server.accepted(), 1);
}

}  // namespace
}  // namespace pgf
