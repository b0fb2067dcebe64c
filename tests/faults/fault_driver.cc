#include "faults/fault_driver.h"

#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/process.h"

namespace pgf::faults {

using SteadyClock = std::chrono::steady_clock;

FaultDriver::FaultDriver(FaultCluster& cluster, uint64_t seed,
                         std::function<void(const std::string&)> log)
    : cluster_(cluster), dice_(seed), log_(std::move(log)) {}

std::vector<pid_t> FaultDriver::processTree(pid_t root) {
  std::vector<pid_t> out;
  if (root <= 0)
    return out;
  std::multimap<pid_t, pid_t> children;
  if (DIR* proc = opendir("/proc")) {
    while (dirent* e = readdir(proc)) {
      char* end = nullptr;
      const long pid = strtol(e->d_name, &end, 10);
      if (pid <= 0 || *end != '\0')
        continue;
      std::ifstream stat(fmt::format("/proc/{}/stat", pid));
      std::string text;
      std::getline(stat, text);
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const auto close = text.rfind(')');
      if (close == std::string::npos)
        continue;
      std::istringstream rest(text.substr(close + 1));
      char state = 0;
      long ppid = 0;
      if (rest >> state >> ppid)
        children.emplace(static_cast<pid_t>(ppid), static_cast<pid_t>(pid));
    }
    closedir(proc);
  }
  out.push_back(root);
  for (size_t i = 0; i < out.size(); ++i) {
    auto [from, to] = children.equal_range(out[i]);
    for (auto it = from; it != to; ++it)
      out.push_back(it->second);
  }
  return out;
}

int FaultDriver::resolve(Target target) {
  const int n = cluster_.nodes();
  auto primaries = cluster_.primaries();
  const int primary = primaries.empty() ? -1 : primaries[0];
  const int any = static_cast<int>(dice_() % static_cast<uint64_t>(n));
  switch (target) {
    case Target::kPrimary:
      return primary >= 0 ? primary : any;
    case Target::kReplica: {
      if (primary < 0)
        return any;
      return (primary + 1 + static_cast<int>(dice_() % static_cast<uint64_t>(n - 1))) % n;
    }
    case Target::kAnyNode:
    case Target::kNone:
      return any;
  }
  return any;
}

void FaultDriver::cut(Applied& a, const std::string& from, const std::string& to, bool both_ways) {
  auto st = both_ways ? cluster_.lab().cut(from, to) : cluster_.lab().cutOneWay(from, to);
  if (!st.ok())
    log_(fmt::format("cannot cut {} -> {}: {}", from, to, st.error().message));
  a.cuts.emplace_back(from, to);
}

FaultDriver::Applied FaultDriver::apply(const FaultStep& step) {
  Applied a;
  a.step = step;
  const int etcd_members = 3;
  if (step.target != Target::kNone)
    a.node = resolve(step.target);
  const std::string node = a.node >= 0 ? cluster_.node(a.node) : "";
  auto freeze = [&](std::vector<pid_t> pids) {
    for (pid_t pid : pids)
      signalProcess(pid, SIGSTOP);
    a.frozen = pids;
    all_frozen_.insert(all_frozen_.end(), pids.begin(), pids.end());
  };
  switch (step.kind) {
    case FaultKind::kKillAgent:
      cluster_.signalAgent(a.node, SIGKILL);
      break;
    case FaultKind::kKillPostgres:
      if (pid_t pm = cluster_.postmasterPid(a.node); pm > 0)
        signalProcess(pm, SIGKILL);
      break;
    case FaultKind::kFreezeAgent:
      freeze({cluster_.agentPid(a.node)});
      break;
    case FaultKind::kFreezePostgres:
      freeze(processTree(cluster_.postmasterPid(a.node)));
      break;
    case FaultKind::kFreezeNode: {
      auto pids = processTree(cluster_.agentPid(a.node));
      for (pid_t pid : processTree(cluster_.postmasterPid(a.node)))
        if (std::find(pids.begin(), pids.end(), pid) == pids.end())
          pids.push_back(pid);
      freeze(pids);
      break;
    }
    case FaultKind::kCutFromEtcd:
      for (int k = 0; k < etcd_members; ++k)
        cut(a, node, cluster_.etcdHost(k), true);
      break;
    case FaultKind::kCutFromPeers:
    case FaultKind::kOneWayToPeers:
      for (int j = 0; j < cluster_.nodes(); ++j)
        if (j != a.node)
          cut(a, node, cluster_.node(j), step.kind == FaultKind::kCutFromPeers);
      break;
    case FaultKind::kIsolate:
      if (auto st = cluster_.lab().isolate(node); !st.ok())
        log_("cannot isolate " + node + ": " + st.error().message);
      break;
    case FaultKind::kOneWayFromEtcd:
      for (int k = 0; k < etcd_members; ++k)
        cut(a, cluster_.etcdHost(k), node, false);
      break;
    case FaultKind::kEtcdMemberDown:
      cluster_.signalEtcd(step.member, SIGKILL);
      a.killed_etcd = {step.member};
      break;
    case FaultKind::kEtcdMinorityWithTarget:
      for (int k = 0; k < etcd_members; ++k)
        if (k != step.member) {
          cut(a, cluster_.etcdHost(step.member), cluster_.etcdHost(k), true);
          cut(a, node, cluster_.etcdHost(k), true);
        }
      break;
    case FaultKind::kEtcdMajorityDown:
      a.killed_etcd = {step.member, (step.member + 1) % etcd_members};
      for (int k : a.killed_etcd)
        cluster_.signalEtcd(k, SIGKILL);
      break;
    case FaultKind::kDiskFull:
      if (auto st = cluster_.fillDisk(a.node); !st.ok())
        log_("cannot fill the disk of " + node + ": " + st.error().message);
      break;
  }
  log_(fmt::format("fault {} {}", kindName(step.kind), a.node >= 0 ? node : ""));
  return a;
}

void FaultDriver::undo(Applied& a) {
  const std::string node = a.node >= 0 ? cluster_.node(a.node) : "";
  for (pid_t pid : a.frozen)
    signalProcess(pid, SIGCONT);
  for (const auto& [from, to] : a.cuts)
    (void)cluster_.lab().heal(from, to);
  for (int k : a.killed_etcd)
    if (auto st = cluster_.startEtcd(k); !st.ok())
      log_(fmt::format("cannot start etcd{}: {}", k + 1, st.error().message));
  if (a.step.kind == FaultKind::kIsolate)
    (void)cluster_.lab().reconnect(node);
  if (a.step.kind == FaultKind::kDiskFull)
    cluster_.freeDisk(a.node);
  if (a.step.kind == FaultKind::kKillAgent)
    if (auto st = cluster_.startAgent(a.node); !st.ok())
      log_("cannot start the agent of " + node + ": " + st.error().message);
  log_(fmt::format("undone {} {}", kindName(a.step.kind), node));
}

void FaultDriver::run(const Schedule& schedule, const std::atomic<bool>* interrupted) {
  struct Event {
    int at_ms;
    bool start;
    size_t step;
  };
  std::vector<Event> events;
  for (size_t i = 0; i < schedule.steps.size(); ++i) {
    events.push_back({schedule.steps[i].start_ms, true, i});
    events.push_back({schedule.steps[i].start_ms + schedule.steps[i].duration_ms, false, i});
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.at_ms < b.at_ms; });
  std::vector<Applied> applied(schedule.steps.size());
  const auto begin = SteadyClock::now();
  for (const auto& e : events) {
    const auto at = begin + std::chrono::milliseconds(e.at_ms);
    while (SteadyClock::now() < at) {
      if (interrupted != nullptr && *interrupted)
        return;
      std::this_thread::sleep_until(
          std::min(at, SteadyClock::now() + std::chrono::milliseconds(100)));
    }
    if (e.start)
      applied[e.step] = apply(schedule.steps[e.step]);
    else
      undo(applied[e.step]);
  }
}

void FaultDriver::undoAll() {
  for (pid_t pid : all_frozen_)
    signalProcess(pid, SIGCONT);
  all_frozen_.clear();
  (void)cluster_.lab().healAll();
  for (int i = 0; i < cluster_.nodes(); ++i)
    cluster_.freeDisk(i);
  for (int k = 0; k < 3; ++k)
    (void)cluster_.startEtcd(k);
  for (int i = 0; i < cluster_.nodes(); ++i)
    (void)cluster_.startAgent(i);
}

}  // namespace pgf::faults
