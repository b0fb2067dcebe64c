#include "faults/netlab.h"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include <fmt/format.h>

#include "common/process.h"

namespace pgf::faults {
namespace {

constexpr Millis kIpTimeout{10000};

Error invalid(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, std::move(message));
}

Result<std::string> ip(const std::vector<std::string>& args) {
  CommandSpec spec;
  spec.argv = {"ip"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  auto run = runCommand(spec, kIpTimeout);
  if (!run.ok())
    return run.error();
  if (run->exit_code != 0) {
    std::string line;
    for (const auto& a : spec.argv)
      line += (line.empty() ? "" : " ") + a;
    std::string out = run->output;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
      out.pop_back();
    return makeError(ErrorCode::kCommandFailed, fmt::format("{}: {}", line, out));
  }
  return run->output;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

bool validName(const std::string& s, size_t max) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-';
  });
}

}  // namespace

NetLab::NetLab(std::string prefix, int net, std::vector<std::string> hosts)
    : prefix_(std::move(prefix)), net_(net), hosts_(std::move(hosts)) {}

Result<std::unique_ptr<NetLab>> NetLab::create(const std::string& prefix, int net,
                                               const std::vector<std::string>& hosts) {
  if (!validName(prefix, 8) || prefix.find('-') != std::string::npos)
    return invalid(fmt::format("lab prefix \"{}\": 1 to 8 letters or digits", prefix));
  if (net < 1 || net > 254)
    return invalid(fmt::format("lab net {}: 1 to 254", net));
  if (hosts.empty() || hosts.size() > 200)
    return invalid("a lab needs 1 to 200 hosts");
  for (const auto& h : hosts) {
    if (!validName(h, 40) || h == kMachine)
      return invalid(fmt::format("host name \"{}\": letters, digits and '-'", h));
    if (std::count(hosts.begin(), hosts.end(), h) > 1)
      return invalid(fmt::format("host name \"{}\" given twice", h));
  }
  std::unique_ptr<NetLab> lab(new NetLab(prefix, net, hosts));
  if (auto st = lab->setUp(); !st.ok())
    return st.error().wrap("setting up the network lab");
  return lab;
}

NetLab::~NetLab() {
  removeLeftovers(prefix_, net_);
}

std::string NetLab::bridge() const {
  return prefix_ + "br";
}
std::string NetLab::hostSide(int i) const {
  return fmt::format("{}{}h", prefix_, i);
}
std::string NetLab::bridgeSide(int i) const {
  return fmt::format("{}{}b", prefix_, i);
}

int NetLab::indexOf(const std::string& host) const {
  if (host == kMachine)
    return -1;
  auto it = std::find(hosts_.begin(), hosts_.end(), host);
  return it == hosts_.end() ? -2 : static_cast<int>(it - hosts_.begin());
}

std::string NetLab::address(const std::string& host) const {
  int i = indexOf(host);
  if (i == -2)
    return "";
  return fmt::format("10.{}.0.{}", net_, i + 2);
}

std::string NetLab::netns(const std::string& host) const {
  return indexOf(host) >= 0 ? prefix_ + "-" + host : "";
}

std::string NetLab::netnsPath(const std::string& host) const {
  return indexOf(host) >= 0 ? "/var/run/netns/" + netns(host) : "";
}

std::vector<std::string> NetLab::inHost(const std::string& host,
                                        const std::vector<std::string>& argv,
                                        const std::string& user) const {
  std::vector<std::string> out = {"ip", "netns", "exec", netns(host)};
  if (!user.empty()) {
    // setpriv (util-linux) drops to the user without a login shell, keeping the environment.
    out.insert(out.end(), {"setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"});
  }
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Status NetLab::setUp() {
  removeLeftovers(prefix_, net_);
  const std::string machine = fmt::format("{}/24", address(kMachine));
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"link", "add", bridge(), "type", "bridge"},
                                             {"addr", "add", machine, "dev", bridge()},
                                             {"link", "set", bridge(), "up"}}) {
    if (auto r = ip(args); !r.ok())
      return r.error();
  }
  for (int i = 0; i < static_cast<int>(hosts_.size()); ++i) {
    const std::string ns = netns(hosts_[i]);
    const std::string addr = fmt::format("{}/24", address(hosts_[i]));
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"netns", "add", ns},
             {"link", "add", hostSide(i), "type", "veth", "peer", "name", bridgeSide(i)},
             {"link", "set", hostSide(i), "netns", ns},
             {"link", "set", bridgeSide(i), "master", bridge()},
             {"link", "set", bridgeSide(i), "up"},
             {"-n", ns, "addr", "add", addr, "dev", hostSide(i)},
             {"-n", ns, "link", "set", hostSide(i), "up"},
             {"-n", ns, "link", "set", "lo", "up"}}) {
      if (auto r = ip(args); !r.ok())
        return r.error();
    }
  }
  return okStatus();
}

std::vector<pid_t> NetLab::processesIn(const std::string& netns_name) {
  std::vector<pid_t> out;
  if (auto list = ip({"netns", "pids", netns_name}); list.ok())
    for (const auto& line : lines(*list))
      if (!line.empty() && std::all_of(line.begin(), line.end(), ::isdigit))
        out.push_back(static_cast<pid_t>(std::stol(line)));
  return out;
}

std::vector<pid_t> NetLab::processes(const std::string& host) const {
  return indexOf(host) >= 0 ? processesIn(netns(host)) : std::vector<pid_t>{};
}

void NetLab::removeLeftovers(const std::string& prefix, int net) {
  if (auto list = ip({"netns", "list"}); list.ok()) {
    for (const auto& line : lines(*list)) {
      std::string name = line.substr(0, line.find(' '));
      if (name.rfind(prefix + "-", 0) != 0)
        continue;
      // A process still running in it (left by a run that was killed) would keep the namespace
      // alive after its name is gone: it goes first, by its PID.
      for (pid_t pid : processesIn(name)) {
        ::kill(pid, SIGCONT);
        ::kill(pid, SIGKILL);
      }
      (void)ip({"netns", "del", name});
    }
  }
  // A namespace that a leftover process still holds keeps its veth end: remove the bridge's ends.
  if (auto links = ip({"-o", "link", "show"}); links.ok()) {
    for (const auto& line : lines(*links)) {
      // "7: pgfx0b@if6: <...>"
      auto colon = line.find(": ");
      if (colon == std::string::npos)
        continue;
      std::string name = line.substr(colon + 2);
      name = name.substr(0, name.find_first_of("@:"));
      if (name.rfind(prefix, 0) == 0 && name != prefix + "br" && !name.empty() &&
          name.back() == 'b')
        (void)ip({"link", "del", name});
    }
  }
  (void)ip({"link", "del", prefix + "br"});
  const std::string ours = fmt::format("blackhole 10.{}.0.", net);
  if (auto routes = ip({"route", "show", "type", "blackhole"}); routes.ok()) {
    for (const auto& line : lines(*routes)) {
      if (line.rfind(ours, 0) != 0)
        continue;
      std::string dest = line.substr(std::string("blackhole ").size());
      dest = dest.substr(0, dest.find(' '));
      (void)ip({"route", "del", "blackhole", dest});
    }
  }
}

Status NetLab::route(const std::string& from, const std::string& to, bool add) {
  const int f = indexOf(from), t = indexOf(to);
  if (f == -2 || t == -2 || f == t)
    return invalid(fmt::format("no link from \"{}\" to \"{}\" in this lab", from, to));
  std::vector<std::string> args;
  if (f >= 0)
    args = {"-n", netns(from)};
  args.insert(args.end(), {"route", add ? "add" : "del", "blackhole", address(to) + "/32"});
  auto r = ip(args);
  return r.ok() ? okStatus() : Status(r.error());
}

Status NetLab::cutOneWay(const std::string& from, const std::string& to) {
  if (cuts_.count({from, to}))
    return okStatus();
  if (auto st = route(from, to, true); !st.ok())
    return st;
  cuts_.insert({from, to});
  return okStatus();
}

Status NetLab::cut(const std::string& a, const std::string& b) {
  if (auto st = cutOneWay(a, b); !st.ok())
    return st;
  return cutOneWay(b, a);
}

Status NetLab::heal(const std::string& a, const std::string& b) {
  for (const auto& link : {std::make_pair(a, b), std::make_pair(b, a)}) {
    if (!cuts_.count(link))
      continue;
    if (auto st = route(link.first, link.second, false); !st.ok())
      return st;
    cuts_.erase(link);
  }
  return okStatus();
}

Status NetLab::isolate(const std::string& host) {
  const int i = indexOf(host);
  if (i < 0)
    return invalid(fmt::format("no host \"{}\" in this lab", host));
  auto r = ip({"link", "set", bridgeSide(i), "down"});
  if (!r.ok())
    return r.error();
  isolated_.insert(host);
  return okStatus();
}

Status NetLab::reconnect(const std::string& host) {
  const int i = indexOf(host);
  if (i < 0)
    return invalid(fmt::format("no host \"{}\" in this lab", host));
  auto r = ip({"link", "set", bridgeSide(i), "up"});
  if (!r.ok())
    return r.error();
  isolated_.erase(host);
  return okStatus();
}

Status NetLab::healAll() {
  Status first = okStatus();
  auto cuts = cuts_;
  for (const auto& [from, to] : cuts)
    if (auto st = heal(from, to); !st.ok() && first.ok())
      first = st;
  auto isolated = isolated_;
  for (const auto& host : isolated)
    if (auto st = reconnect(host); !st.ok() && first.ok())
      first = st;
  return first;
}

bool NetLab::isCut(const std::string& from, const std::string& to) const {
  return cuts_.count({from, to}) > 0 || isolated_.count(from) > 0 || isolated_.count(to) > 0;
}

}  // namespace pgf::faults
