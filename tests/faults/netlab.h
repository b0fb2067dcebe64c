// Separate hosts on one machine, for the fault-injection suite: every host is a network namespace
// of its own, with one address on a bridge the lab creates (10.<net>.0.<2+i>/24). The machine
// itself is 10.<net>.0.1 on that bridge, so the test process reaches every host, and any link
// between two hosts (or between a host and the machine, named kMachine) can be cut and restored.
//
// A cut is a blackhole route in the sending namespace: the sender's new connections fail at once
// and its packets on open connections vanish; the other side hears nothing and times out, as
// across a real partition. No netfilter and no tc classifier is needed (the kernel may have
// neither). A whole host is isolated by taking its link down.
//
// Everything the lab creates carries its prefix: create() first removes what an earlier run with
// the same prefix left behind (a run killed half-way), and the destructor removes it all.
// Whoever starts processes in a namespace stops them, by PID, before the lab goes; whatever still
// runs in one of its namespaces then (a process's own children, a killed run's leftovers) is
// killed by its PID as the namespace is removed.
// Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's `ip`.
#pragma once

#include <sys/types.h>

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace pgf::faults {

class NetLab {
 public:
  // The root namespace, as an end of a link: the test process, and whatever it runs there.
  static constexpr const char* kMachine = "machine";

  // `prefix`: at most 8 letters or digits (it names interfaces); `net`: 10.<net>.0.0/24, 1..254;
  // `hosts`: distinct names of letters, digits and '-'.
  static Result<std::unique_ptr<NetLab>> create(const std::string& prefix, int net,
                                                const std::vector<std::string>& hosts);
  // Removes whatever create() left for `prefix` (namespaces, bridge, veth, machine routes).
  static void removeLeftovers(const std::string& prefix, int net);
  ~NetLab();
  NetLab(const NetLab&) = delete;
  NetLab& operator=(const NetLab&) = delete;

  const std::vector<std::string>& hosts() const { return hosts_; }
  // 10.<net>.0.<2+i> for host i, 10.<net>.0.1 for kMachine; "" for an unknown name.
  std::string address(const std::string& host) const;
  // The namespace's name (for `ip netns exec`) and its path (for setns()).
  std::string netns(const std::string& host) const;
  std::string netnsPath(const std::string& host) const;
  // `argv` as a command line that runs it inside the host's namespace, as `user` when given.
  std::vector<std::string> inHost(const std::string& host, const std::vector<std::string>& argv,
                                  const std::string& user = "") const;

  // Packets from `from` to `to` are dropped (the other direction still flows).
  Status cutOneWay(const std::string& from, const std::string& to);
  // Both directions.
  Status cut(const std::string& a, const std::string& b);
  Status heal(const std::string& a, const std::string& b);
  // Every link of `host`, the machine's included, goes down, and comes back with reconnect().
  Status isolate(const std::string& host);
  Status reconnect(const std::string& host);
  // Restores every cut and isolated host.
  Status healAll();
  bool isCut(const std::string& from, const std::string& to) const;
  // The PIDs of the processes running in the host's namespace.
  std::vector<pid_t> processes(const std::string& host) const;

 private:
  NetLab(std::string prefix, int net, std::vector<std::string> hosts);
  static std::vector<pid_t> processesIn(const std::string& netns_name);
  Status setUp();
  int indexOf(const std::string& host) const;  // -1 for kMachine, -2 when unknown
  std::string bridge() const;
  std::string hostSide(int i) const;    // the veth end inside host i
  std::string bridgeSide(int i) const;  // its peer on the bridge
  Status route(const std::string& from, const std::string& to, bool add);

  std::string prefix_;
  int net_;
  std::vector<std::string> hosts_;
  std::set<std::pair<std::string, std::string>> cuts_;  // (from, to)
  std::set<std::string> isolated_;
};

}  // namespace pgf::faults
