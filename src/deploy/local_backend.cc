#include "deploy/local_backend.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/http_client.h"
#include "common/process.h"
#include "dcs/etcd/etcd_client.h"
#include "postgres/data_dir.h"

namespace pgf {
namespace fs = std::filesystem;

namespace {

constexpr Millis kAgentStopWait{30000};
constexpr Millis kKillWait{10000};

std::string commandLine(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string line = text.str();
  for (char& c : line)
    if (c == '\0')
      c = ' ';
  return line;
}

std::optional<pid_t> readPidFile(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 1)
    return std::nullopt;
  return static_cast<pid_t>(pid);
}

// Waits until `pid` is gone (reaping it when it is our child).
bool waitGone(pid_t pid, Millis timeout) {
  MonoTime deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    waitProcess(pid, Millis(0));
    if (!processAlive(pid))
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Stops `pid` with `sig`, then SIGKILL when it has not gone within `wait`.
void stopProcess(pid_t pid, int sig, Millis wait) {
  signalProcess(pid, sig);
  if (!waitGone(pid, wait)) {
    signalProcess(pid, SIGKILL);
    waitGone(pid, kKillWait);
  }
}

Status makeDir(const std::string& path, mode_t mode, std::optional<uid_t> uid,
               std::optional<gid_t> gid) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("creating {}: {}", path, ec.message()));
  if (::chmod(path.c_str(), mode) != 0)
    return makeError(ErrorCode::kIo, fmt::format("chmod {}", path));
  if (uid && ::chown(path.c_str(), *uid, gid.value_or(static_cast<gid_t>(-1))) != 0)
    return makeError(ErrorCode::kIo, fmt::format("chown {}", path));
  return okStatus();
}

// Copies `from` to `to` (mode 0755) unless `to` has the same size and is not older.
Status installCopy(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (fs::exists(to, ec) && fs::file_size(to, ec) == fs::file_size(from, ec) &&
      fs::last_write_time(to, ec) >= fs::last_write_time(from, ec))
    return okStatus();
  // A running agent keeps its old copy: write a new file and rename it over the name.
  fs::path tmp = to;
  tmp += ".new";
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("copying {}: {}", from.string(), ec.message()));
  ::chmod(tmp.c_str(), 0755);
  fs::rename(tmp, to, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("installing {}: {}", to.string(), ec.message()));
  return okStatus();
}

}  // namespace

bool InstanceHealth::healthy() const {
  if (!haproxy_running || primaries != 1 || nodes.empty())
    return false;
  for (const auto& n : nodes)
    if (!n.agent_running)
      return false;
  return streaming_replicas == static_cast<int>(nodes.size()) - 1;
}

std::string haproxyConfig(const DeploymentManifest& m) {
  std::string cfg = R"(global
  maxconn 500
defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s
)";
  auto listen = [&](const char* name, int port, const char* check) {
    cfg += fmt::format(R"(listen {}
  bind 127.0.0.1:{}
  option httpchk OPTIONS {}
  http-check expect status 200
  default-server inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions
)",
                       name, port, check);
    for (const auto& n : m.nodes)
      cfg += fmt::format("  server {} 127.0.0.1:{} check port {}\n", n.name, n.pg_port, n.api_port);
  };
  listen("primary", m.read_write_port, "/primary");
  if (m.read_only_port > 0)
    listen("replicas", m.read_only_port, "/replica");
  return cfg;
}

std::optional<pid_t> recordedProcess(const std::string& pid_file, const std::string& marker) {
  auto pid = readPidFile(pid_file);
  if (!pid)
    return std::nullopt;
  waitProcess(*pid, Millis(0));  // reaps it when it is our exited child
  if (!processAlive(*pid) || commandLine(*pid).find(marker) == std::string::npos)
    return std::nullopt;
  return pid;
}

LocalBackend::LocalBackend(LocalBackendOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<LocalBackend>> LocalBackend::create(LocalBackendOptions options) {
  if (options.state_dir.empty() || options.state_dir.front() != '/')
    return makeError(ErrorCode::kConfig, "local backend: the state directory must be absolute");
  std::unique_ptr<LocalBackend> b(new LocalBackend(std::move(options)));
  if (::geteuid() == 0) {
    auto ids = lookupUser(b->options_.run_as);
    if (!ids.ok())
      return ids.error().wrap("local backend: the user to run PostgreSQL as");
    b->uid_ = ids->first;
    b->gid_ = ids->second;
  }
  // Other users may pass through (the nodes' own directories are private to their user).
  PGF_TRY(makeDir(b->options_.state_dir, 0711, std::nullopt, std::nullopt), "local backend");
  PGF_TRY(makeDir(b->options_.state_dir + "/instances", 0711, std::nullopt, std::nullopt),
          "local backend");
  PGF_TRY(b->installAgent(), "local backend");
  return b;
}

Status LocalBackend::installAgent() {
  const fs::path built(options_.agent_bin);
  if (!fs::exists(built))
    return makeError(ErrorCode::kConfig, fmt::format("no agent at {}", built.string()));
  const std::string bin = options_.state_dir + "/bin";
  PGF_RETURN_IF_ERROR(makeDir(bin, 0755, std::nullopt, std::nullopt));
  PGF_RETURN_IF_ERROR(installCopy(built, bin + "/pgfleet-agent"));
  const fs::path watchdog = built.parent_path() / "pgfleet-watchdog";
  if (fs::exists(watchdog))
    PGF_RETURN_IF_ERROR(installCopy(watchdog, bin + "/pgfleet-watchdog"));
  agent_copy_ = bin + "/pgfleet-agent";
  return okStatus();
}

std::string LocalBackend::instanceDir(const std::string& instance) const {
  return fmt::format("{}/instances/{}", options_.state_dir, instance);
}

std::string LocalBackend::nodeDir(const std::string& instance, const std::string& node) const {
  return fmt::format("{}/{}", instanceDir(instance), node);
}

Status LocalBackend::startAgent(const std::string& instance, const NodeManifest& node) {
  const std::string dir = nodeDir(instance, node.name);
  const std::string config = dir + "/agent.yml";
  if (recordedProcess(dir + "/agent.pid", config))
    return okStatus();
  CommandSpec spec;
  spec.argv = {agent_copy_, config};
  spec.uid = uid_;
  spec.gid = gid_;
  spec.cwd = dir;
  spec.env = {{"HOME", dir}};
  spec.output_file = dir + "/agent.log";
  spec.nice = 0;  // the tenants' processes run at the normal priority, whatever the broker's
  spec.pid_file = dir + "/agent.pid";
  auto pid = spawnProcess(spec);
  if (!pid.ok())
    return pid.error().wrap("starting the agent of " + node.name);
  return okStatus();
}

Status LocalBackend::restartAgent(const std::string& instance, const NodeManifest& node) {
  const std::string dir = nodeDir(instance, node.name);
  if (auto pid = recordedProcess(dir + "/agent.pid", dir + "/agent.yml")) {
    stopProcess(*pid, SIGTERM, kAgentStopWait);
    if (processAlive(*pid))
      return makeError(ErrorCode::kInternal,
                       fmt::format("the agent of {} (pid {}) would not stop", node.name, *pid));
  }
  if (auto pm = readPidFile(dir + "/data/postmaster.pid"); pm && postmasterAlive(*pm)) {
    stopProcess(*pm, SIGQUIT, kKillWait);
    if (postmasterAlive(*pm))
      return makeError(ErrorCode::kInternal,
                       fmt::format("the PostgreSQL of {} (pid {}) would not stop", node.name, *pm));
  }
  return startAgent(instance, node);
}

Status LocalBackend::startHaproxy(const std::string& instance, const DeploymentManifest& m) {
  const std::string dir = instanceDir(instance);
  const std::string config = dir + "/haproxy.cfg";
  if (recordedProcess(dir + "/haproxy.pid", config))
    return okStatus();
  PGF_RETURN_IF_ERROR(writeFileAtomically(config, haproxyConfig(m), 0644));
  CommandSpec spec;
  spec.argv = {"haproxy", "-db", "-f", config};
  spec.uid = uid_;
  spec.gid = gid_;
  spec.cwd = dir;
  spec.output_file = dir + "/haproxy.log";
  spec.nice = 0;  // the tenants' processes run at the normal priority, whatever the broker's
  spec.pid_file = dir + "/haproxy.pid";
  auto pid = spawnProcess(spec);
  if (!pid.ok())
    return pid.error().wrap("starting haproxy");
  return okStatus();
}

Status LocalBackend::reloadHaproxy(const std::string& instance, const DeploymentManifest& m) {
  const std::string dir = instanceDir(instance);
  const std::string config = dir + "/haproxy.cfg";
  auto running = recordedProcess(dir + "/haproxy.pid", config);
  if (!running)
    return startHaproxy(instance, m);
  PGF_RETURN_IF_ERROR(writeFileAtomically(config, haproxyConfig(m), 0644));
  CommandSpec spec;
  spec.argv = {"haproxy", "-db", "-f", config, "-sf", std::to_string(*running)};
  spec.uid = uid_;
  spec.gid = gid_;
  spec.cwd = dir;
  spec.output_file = dir + "/haproxy.log";
  spec.nice = 0;
  spec.pid_file = dir + "/haproxy.pid";
  auto pid = spawnProcess(spec);
  if (!pid.ok())
    return pid.error().wrap("reloading haproxy");
  return okStatus();
}

Status LocalBackend::deploy(const std::string& instance, const DeploymentManifest& m) {
  const std::string dir = instanceDir(instance);
  PGF_RETURN_IF_ERROR(makeDir(dir, 0711, std::nullopt, std::nullopt));
  for (const auto& node : m.nodes) {
    const std::string node_dir = nodeDir(instance, node.name);
    PGF_RETURN_IF_ERROR(makeDir(node_dir, 0700, uid_, gid_));
    const std::string config = node_dir + "/agent.yml";
    // The configuration holds the instance's passwords: readable by the agent's user only.
    PGF_RETURN_IF_ERROR(writeFileAtomically(config, node.agent_config, 0600));
    if (uid_ && ::chown(config.c_str(), *uid_, gid_.value_or(static_cast<gid_t>(-1))) != 0)
      return makeError(ErrorCode::kIo, "chown " + config);
  }
  for (const auto& node : m.nodes)
    PGF_RETURN_IF_ERROR(startAgent(instance, node));
  return startHaproxy(instance, m);
}

Status LocalBackend::restartStopped(const std::string& instance, const DeploymentManifest& m) {
  for (const auto& node : m.nodes)
    PGF_RETURN_IF_ERROR(startAgent(instance, node));
  return startHaproxy(instance, m);
}

InstanceHealth LocalBackend::health(const std::string& instance, const DeploymentManifest& m) {
  InstanceHealth h;
  const std::string dir = instanceDir(instance);
  h.haproxy_running = recordedProcess(dir + "/haproxy.pid", dir + "/haproxy.cfg").has_value();
  for (const auto& node : m.nodes) {
    NodeHealth n;
    n.name = node.name;
    const std::string node_dir = nodeDir(instance, node.name);
    n.agent_running = recordedProcess(node_dir + "/agent.pid", node_dir + "/agent.yml").has_value();
    HttpConnection conn("127.0.0.1", node.api_port);
    auto res =
        conn.request("GET", "/patroni", {}, "", std::chrono::steady_clock::now() + Millis(2000));
    if (res.ok() && (res->status == 200 || res->status == 503)) {
      auto doc = nlohmann::json::parse(res->body, nullptr, false);
      if (doc.is_object() && doc.contains("postmaster_start_time") &&
          doc["postmaster_start_time"].is_string())
        n.started = doc["postmaster_start_time"].get<std::string>();
      if (doc.is_object() && doc.value("state", "") == "running") {
        std::string role = doc.value("role", "");
        if (role == "master" || role == "primary") {
          n.role = "primary";
          ++h.primaries;
        } else if (role == "replica") {
          n.role = "replica";
          n.streaming = doc.value("replication_state", "") == "streaming";
          if (n.streaming)
            ++h.streaming_replicas;
        }
      }
    }
    h.nodes.push_back(std::move(n));
  }
  return h;
}

Status LocalBackend::forgetCluster(const std::string& scope) {
  if (options_.etcd.empty())
    return okStatus();
  EtcdClientOptions o;
  o.endpoints = options_.etcd;
  o.request_timeout = Millis(5000);
  auto client = EtcdClient::create(o);
  if (!client.ok())
    return client.error();
  // Every key under "/service/<scope>/": the range ends where the prefix's last byte, '/', is
  // followed by '0'.
  const std::string prefix = "/service/" + scope + "/";
  const std::string end = "/service/" + scope + "0";
  auto r = (*client)->call("/v3/kv/deleterange",
                           {{"key", base64Encode(prefix)}, {"range_end", base64Encode(end)}});
  if (!r.ok())
    return r.error();
  return okStatus();
}

std::vector<pid_t> LocalBackend::processes(const std::string& instance) const {
  std::vector<pid_t> out;
  const std::string dir = instanceDir(instance);
  if (auto pid = recordedProcess(dir + "/haproxy.pid", dir + "/haproxy.cfg"))
    out.push_back(*pid);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory(ec))
      continue;
    const std::string node_dir = entry.path().string();
    if (auto pid = recordedProcess(node_dir + "/agent.pid", node_dir + "/agent.yml"))
      out.push_back(*pid);
    if (auto pm = readPidFile(node_dir + "/data/postmaster.pid"); pm && postmasterAlive(*pm))
      out.push_back(*pm);
  }
  return out;
}

Status LocalBackend::destroy(const std::string& instance) {
  const std::string dir = instanceDir(instance);
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return okStatus();
  std::vector<std::string> node_dirs;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_directory(ec))
      node_dirs.push_back(entry.path().string());

  // The agents first, all at once (a stopping agent stops its PostgreSQL), then whatever
  // PostgreSQL is left, then HAProxy.
  std::vector<std::thread> stops;
  for (const auto& node_dir : node_dirs)
    if (auto pid = recordedProcess(node_dir + "/agent.pid", node_dir + "/agent.yml"))
      stops.emplace_back([pid = *pid] { stopProcess(pid, SIGTERM, kAgentStopWait); });
  for (auto& t : stops)
    t.join();
  for (const auto& node_dir : node_dirs)
    if (auto pm = readPidFile(node_dir + "/data/postmaster.pid"); pm && postmasterAlive(*pm))
      stopProcess(*pm, SIGQUIT, kKillWait);
  if (auto pid = recordedProcess(dir + "/haproxy.pid", dir + "/haproxy.cfg"))
    stopProcess(*pid, SIGTERM, kKillWait);

  auto left = processes(instance);
  if (!left.empty())
    return makeError(ErrorCode::kInternal,
                     fmt::format("{} process(es) of instance {} would not stop (first: pid {})",
                                 left.size(), instance, left.front()));
  PGF_TRY(forgetCluster(instance), "removing the keys of " + instance);
  fs::remove_all(dir, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("removing {}: {}", dir, ec.message()));
  return okStatus();
}

}  // namespace pgf
