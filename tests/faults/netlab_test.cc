// The fault-injection suite's network lab on the real kernel: hosts in namespaces of their own
// reach each other and the machine, cuts (both ways, one way, a whole host) stop exactly the
// traffic they name and heal, and nothing the lab created outlives it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/process.h"
#include "faults/netlab.h"

namespace pgf::faults {
namespace {

constexpr int kNet = 93;
constexpr int kPort = 7391;
const char* const kPrefix = "pgfxt";

// Runs `fn` on a thread of its own that entered `host`'s network namespace (the machine's stays
// as it is): sockets it creates live there.
template <typename F>
auto inHost(const NetLab& lab, const std::string& host, F fn) -> decltype(fn()) {
  return std::async(std::launch::async,
                    [&lab, host, fn] {
                      if (host != NetLab::kMachine) {
                        int fd = ::open(lab.netnsPath(host).c_str(), O_RDONLY | O_CLOEXEC);
                        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0)
                          ADD_FAILURE() << "cannot enter " << lab.netnsPath(host);
                        if (fd >= 0)
                          ::close(fd);
                      }
                      return fn();
                    })
      .get();
}

sockaddr_in endpoint(const std::string& address, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  return a;
}

// A TCP listener (accepting and closing) and a UDP socket on `host`'s address, for as long as it
// lives.
class Listener {
 public:
  Listener(const NetLab& lab, std::string host) : lab_(lab), host_(std::move(host)) {
    std::promise<void> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, &ready] {
      if (host_ != NetLab::kMachine) {
        int ns = ::open(lab_.netnsPath(host_).c_str(), O_RDONLY | O_CLOEXEC);
        if (ns >= 0) {
          (void)::setns(ns, CLONE_NEWNET);
          ::close(ns);
        }
      }
      const sockaddr_in at = endpoint(lab_.address(host_), kPort);
      int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      bool ok = ::bind(tcp, reinterpret_cast<const sockaddr*>(&at), sizeof at) == 0 &&
                ::listen(tcp, 16) == 0;
      udp_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ok = ok && ::bind(udp_, reinterpret_cast<const sockaddr*>(&at), sizeof at) == 0;
      if (!ok)
        ADD_FAILURE() << "cannot listen on " << lab_.address(host_);
      ready.set_value();
      while (!stop_) {
        pollfd p{tcp, POLLIN, 0};
        if (::poll(&p, 1, 50) == 1) {
          int c = ::accept4(tcp, nullptr, nullptr, SOCK_CLOEXEC);
          if (c >= 0)
            ::close(c);
        }
      }
      ::close(tcp);
    });
    started.wait();
  }
  ~Listener() {
    stop_ = true;
    thread_.join();
    ::close(udp_);
  }
  // Whether a datagram arrived within `wait`.
  bool received(std::chrono::milliseconds wait) {
    pollfd p{udp_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) != 1)
      return false;
    char buf[64];
    return ::recv(udp_, buf, sizeof buf, 0) > 0;
  }

 private:
  const NetLab& lab_;
  std::string host_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int udp_ = -1;
};

// Whether a TCP connection from `from` to `to` is established within 700 ms.
bool connects(const NetLab& lab, const std::string& from, const std::string& to) {
  return inHost(lab, from, [&lab, to] {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const sockaddr_in at = endpoint(lab.address(to), kPort);
    int r = ::connect(s, reinterpret_cast<const sockaddr*>(&at), sizeof at);
    bool ok = r == 0;
    if (r != 0 && errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::poll(&p, 1, 700) == 1 && ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
           err == 0;
    }
    ::close(s);
    return ok;
  });
}

void sendDatagram(const NetLab& lab, const std::string& from, const std::string& to) {
  inHost(lab, from, [&lab, to] {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const sockaddr_in at = endpoint(lab.address(to), kPort);
    (void)::sendto(s, "x", 1, 0, reinterpret_cast<const sockaddr*>(&at), sizeof at);
    ::close(s);
    return 0;
  });
}

std::string netnsList() {
  CommandSpec spec;
  spec.argv = {"ip", "netns", "list"};
  auto r = runCommand(spec, Millis(5000));
  return r.ok() ? r->output : "";
}

TEST(NetLab, HostsReachEachOtherAndCutsStopExactlyWhatTheyName) {
  auto made = NetLab::create(kPrefix, kNet, {"a", "b", "c"});
  ASSERT_TRUE(made.ok()) << made.error().message;
  NetLab& lab = **made;
  EXPECT_EQ(lab.address("a"), "10.93.0.2");
  EXPECT_EQ(lab.address(NetLab::kMachine), "10.93.0.1");
  EXPECT_EQ(lab.address("nobody"), "");
  Listener a(lab, "a"), b(lab, "b"), c(lab, "c"), machine(lab, NetLab::kMachine);

  for (const char* from : {"a", "b", "c", NetLab::kMachine})
    for (const char* to : {"a", "b", "c", NetLab::kMachine})
      if (std::string(from) != to) {
        EXPECT_TRUE(connects(lab, from, to)) << from << " -> " << to;
      }

  // Both ways between a and b; a and b still reach c and the machine.
  ASSERT_TRUE(lab.cut("a", "b").ok());
  EXPECT_FALSE(connects(lab, "a", "b"));
  EXPECT_FALSE(connects(lab, "b", "a"));
  EXPECT_TRUE(connects(lab, "a", "c"));
  EXPECT_TRUE(connects(lab, "b", NetLab::kMachine));
  EXPECT_TRUE(lab.isCut("b", "a"));
  ASSERT_TRUE(lab.heal("a", "b").ok());
  EXPECT_TRUE(connects(lab, "a", "b"));
  EXPECT_FALSE(lab.isCut("a", "b"));

  // One way: a's packets to b are lost, b's to a arrive.
  ASSERT_TRUE(lab.cutOneWay("a", "b").ok());
  sendDatagram(lab, "b", "a");
  EXPECT_TRUE(a.received(std::chrono::milliseconds(1000)));
  sendDatagram(lab, "a", "b");
  EXPECT_FALSE(b.received(std::chrono::milliseconds(300)));
  EXPECT_TRUE(lab.isCut("a", "b"));
  EXPECT_FALSE(lab.isCut("b", "a"));

  // The machine's own link to a host.
  ASSERT_TRUE(lab.cut(NetLab::kMachine, "c").ok());
  EXPECT_FALSE(connects(lab, NetLab::kMachine, "c"));
  EXPECT_TRUE(connects(lab, "a", "c"));

  // A whole host.
  ASSERT_TRUE(lab.isolate("b").ok());
  EXPECT_FALSE(connects(lab, "c", "b"));
  EXPECT_FALSE(connects(lab, "b", NetLab::kMachine));

  ASSERT_TRUE(lab.healAll().ok());
  for (const char* from : {"a", "b", "c", NetLab::kMachine})
    for (const char* to : {"a", "b", "c", NetLab::kMachine})
      if (std::string(from) != to) {
        EXPECT_TRUE(connects(lab, from, to)) << "after healing: " << from << " -> " << to;
      }

  EXPECT_FALSE(lab.cut("a", "nobody").ok());
  EXPECT_FALSE(lab.isolate(NetLab::kMachine).ok());
}

TEST(NetLab, LeavesNothingBehindAndClearsWhatAKilledRunLeft) {
  // What a run killed half-way would have left: a namespace and a machine route.
  CommandSpec spec;
  spec.argv = {"ip", "netns", "add", std::string(kPrefix) + "-stale"};
  ASSERT_TRUE(runCommand(spec, Millis(5000)).ok());
  spec.argv = {"ip", "route", "add", "blackhole", "10.93.0.7/32"};
  ASSERT_TRUE(runCommand(spec, Millis(5000)).ok());
  {
    auto made = NetLab::create(kPrefix, kNet, {"a", "b"});
    ASSERT_TRUE(made.ok()) << made.error().message;
    EXPECT_EQ(netnsList().find(std::string(kPrefix) + "-stale"), std::string::npos);
    EXPECT_NE(netnsList().find(std::string(kPrefix) + "-a"), std::string::npos);
    ASSERT_TRUE((*made)->cut(NetLab::kMachine, "a").ok());
  }
  EXPECT_EQ(netnsList().find(kPrefix), std::string::npos) << netnsList();
  spec.argv = {"ip", "-o", "link", "show"};
  auto links = runCommand(spec, Millis(5000));
  ASSERT_TRUE(links.ok());
  EXPECT_EQ(links->output.find(kPrefix), std::string::npos) << links->output;
  spec.argv = {"ip", "route", "show", "type", "blackhole"};
  auto routes = runCommand(spec, Millis(5000));
  ASSERT_TRUE(routes.ok());
  EXPECT_EQ(routes->output.find("10.93.0."), std::string::npos) << routes->output;

  EXPECT_FALSE(NetLab::create("bad-prefix", kNet, {"a"}).ok());
  EXPECT_FALSE(NetLab::create(kPrefix, 300, {"a"}).ok());
  EXPECT_FALSE(NetLab::create(kPrefix, kNet, {"a", "a"}).ok());
}

}  // namespace
}  // namespace pgf::faults
