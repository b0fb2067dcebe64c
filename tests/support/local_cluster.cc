#include "support/local_cluster.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "common/process.h"
#include "deploy/local_backend.h"
#include "support/etcd_process.h"
#include "support/ports.h"
#include "support/test_files.h"

namespace pgf::testing {
namespace fs = std::filesystem;

namespace {

void writeFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool waitUntil(const std::function<bool()>& condition, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(Millis(100));
  }
}

LocalCluster::LocalCluster(ClusterOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/pgfleet-it-XXXXXX";
  dir_ = mkdtemp(tmpl);
  auto user = lookupUser("postgres");
  if (user.ok())
    std::tie(uid_, gid_) = *user;
  chmod(dir_.c_str(), 0755);
  if (chown(dir_.c_str(), uid_, gid_) != 0) {
    // The agents then fail to start, which the test reports.
  }
  superuser_password_ = randomPassword();
  replication_password_ = randomPassword();
  auto ports = pickFreePorts(options_.nodes * 2 + 2);
  for (int i = 0; i < options_.nodes; ++i)
    ports_.push_back({ports[2 * i], ports[2 * i + 1]});
  rw_port_ = ports[options_.nodes * 2];
  ro_port_ = ports[options_.nodes * 2 + 1];
  agent_pids_.assign(options_.nodes, 0);
}

LocalCluster::~LocalCluster() {
  stopAll();
  std::error_code ec;
  if (getenv("PGFLEET_KEEP_TEST_DIRS") == nullptr)
    fs::remove_all(dir_, ec);
}

std::string LocalCluster::name(int i) const {
  return fmt::format("node{}", i + 1);
}
std::string LocalCluster::configPath(int i) const {
  return fmt::format("{}/{}.yml", dir_, name(i));
}
std::string LocalCluster::dataDir(int i) const {
  return fmt::format("{}/{}/data", dir_, name(i));
}
std::string LocalCluster::etcdEndpoint() const {
  return etcd_ ? etcd_->endpoint() : "";
}

std::string LocalCluster::nodeConfig(int i) const {
  return fmt::format(
      R"(scope: {scope}
namespace: /service
name: {name}
log:
  level: info
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
{auth}etcd3:
  hosts: {etcd}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry}
    maximum_lag_on_failover: 1048576
    synchronous_mode: {sync}
    synchronous_mode_strict: {strict}
    failsafe_mode: {failsafe}
    postgresql:
      use_pg_rewind: {rewind}
      use_slots: true
      parameters:
        wal_keep_size: 128MB
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {dir}/{name}/data
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: {dir}/{name}/pgpass
  authentication:
    superuser:
      username: postgres
      password: {su}
    replication:
      username: replicator
      password: {repl}
    rewind:
      username: rewinder
      password: {repl}
  parameters:
    shared_buffers: 32MB
    max_connections: 50
{callbacks}{tags})",
      fmt::arg("scope", options_.scope), fmt::arg("name", name(i)), fmt::arg("api", ports_[i].api),
      fmt::arg("etcd", etcdEndpoint()), fmt::arg("ttl", options_.ttl),
      fmt::arg("loop_wait", options_.loop_wait), fmt::arg("retry", options_.retry_timeout),
      fmt::arg("rewind", options_.use_pg_rewind ? "true" : "false"), fmt::arg("pg", ports_[i].pg),
      fmt::arg("dir", dir_), fmt::arg("su", superuser_password_),
      fmt::arg("repl", replication_password_),
      fmt::arg("sync", options_.synchronous_mode ? "true" : "false"),
      fmt::arg("callbacks", options_.callbacks
                                ? fmt::format("  callbacks:\n    on_start: /bin/sh {0}/{1}/cb.sh\n"
                                              "    on_role_change: /bin/sh {0}/{1}/cb.sh\n",
                                              dir_, name(i))
                                : std::string()),
      fmt::arg("strict", options_.synchronous_mode_strict ? "true" : "false"),
      fmt::arg("failsafe", options_.failsafe_mode ? "true" : "false"),
      fmt::arg("tags", options_.replicatefrom.count(i) ? fmt::format("tags:\n  replicatefrom: {}\n",
                                                                     options_.replicatefrom.at(i))
                                                       : std::string()),
      fmt::arg("auth", options_.rest_password.empty()
                           ? std::string()
                           : fmt::format("  authentication:\n    username: admin\n"
                                         "    password: {}\n",
                                         options_.rest_password)));
}

Status LocalCluster::start() {
  // The agent binary may sit in a directory the postgres user cannot enter: run a copy, with the
  // watchdog program it starts from its own directory.
  agent_bin_ = dir_ + "/pgfleet-agent";
  const fs::path built(PGFLEET_AGENT_BIN);
  for (const auto& [from, to] :
       {std::pair{built, fs::path(agent_bin_)},
        std::pair{built.parent_path() / "pgfleet-watchdog", fs::path(dir_) / "pgfleet-watchdog"}}) {
    std::error_code ec;
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (ec)
      return makeError(ErrorCode::kIo, fmt::format("copying {}: {}", from.string(), ec.message()));
    chmod(to.c_str(), 0755);
  }

  etcd_ = std::make_unique<EtcdProcess>(dir_ + "/etcd");
  PGF_TRY(etcd_->start(), "starting etcd");
  for (int i = 0; i < nodes(); ++i) {
    std::string node_dir = fmt::format("{}/{}", dir_, name(i));
    fs::create_directories(node_dir);
    if (chown(node_dir.c_str(), uid_, gid_) != 0)
      return makeError(ErrorCode::kIo, "chown " + node_dir);
    chmod(node_dir.c_str(), 0700);
    writeFile(configPath(i), nodeConfig(i), 0644);
    if (options_.callbacks) {
      const std::string script = node_dir + "/cb.sh";
      writeFile(script, fmt::format("echo \"$@\" >> {}\n", callbackLog(i)), 0644);
      if (chown(script.c_str(), uid_, gid_) != 0)
        return makeError(ErrorCode::kIo, "chown " + script);
    }
  }
  for (int i = 0; i < nodes(); ++i)
    PGF_TRY(startAgent(i), "starting " + name(i));
  if (options_.haproxy)
    PGF_TRY(startHaproxy(), "starting haproxy");
  return okStatus();
}

Status LocalCluster::startAgent(int i) {
  CommandSpec spec;
  spec.argv = {agent_bin_, configPath(i)};
  spec.uid = uid_;
  spec.gid = gid_;
  spec.cwd = dir_;
  spec.env = {{"HOME", dir_}};
  spec.output_file = fmt::format("{}/{}.agent.log", dir_, name(i));
  auto pid = spawnProcess(spec);
  if (!pid.ok())
    return pid.error();
  agent_pids_[i] = *pid;
  return okStatus();
}

void LocalCluster::signalAgent(int i, int sig) {
  pid_t pid = agent_pids_[i];
  if (pid <= 0)
    return;
  signalProcess(pid, sig);
  if (sig == SIGKILL || sig == SIGTERM) {
    if (!waitProcess(pid, Millis(sig == SIGKILL ? 10000 : 90000))) {
      signalProcess(pid, SIGKILL);
      waitProcess(pid, Millis(10000));
    }
    agent_pids_[i] = 0;
  }
}

bool LocalCluster::agentRunning(int i) {
  pid_t pid = agent_pids_[i];
  if (pid <= 0)
    return false;
  if (waitProcess(pid, Millis(0))) {
    agent_pids_[i] = 0;
    return false;
  }
  return true;
}

pid_t LocalCluster::postmasterPid(int i) const {
  std::ifstream in(dataDir(i) + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid))
    return 0;
  return processAlive(static_cast<pid_t>(pid)) ? static_cast<pid_t>(pid) : 0;
}

void LocalCluster::killPostmaster(int i) {
  pid_t pid = postmasterPid(i);
  if (pid <= 0)
    return;
  signalProcess(pid, SIGKILL);
  waitUntil([pid] { return !processAlive(pid); }, Millis(10000));
}

Status LocalCluster::startHaproxy() {
  DeploymentManifest m;
  for (int i = 0; i < nodes(); ++i)
    m.nodes.push_back({name(i), ports_[i].pg, ports_[i].api, ""});
  m.read_write_port = rw_port_;
  m.read_only_port = ro_port_;
  const std::string cfg = haproxyConfig(m);
  std::string path = dir_ + "/haproxy.cfg";
  writeFile(path, cfg, 0644);
  CommandSpec spec;
  spec.argv = {"haproxy", "-db", "-f", path};
  spec.output_file = dir_ + "/haproxy.log";
  auto pid = spawnProcess(spec);
  if (!pid.ok())
    return pid.error();
  haproxy_pid_ = *pid;
  return okStatus();
}

int LocalCluster::restGet(int i, const std::string& path, std::string* body) const {
  httplib::Client client("127.0.0.1", ports_[i].api);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(2, 0);
  auto res = client.Get(path.c_str());
  if (!res)
    return 0;
  if (body)
    *body = res->body;
  return res->status;
}

int LocalCluster::restCall(int i, const std::string& method, const std::string& path,
                           const std::string& body, std::string* answer, bool authenticate,
                           Millis timeout) const {
  httplib::Client client("127.0.0.1", ports_[i].api);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), 0);
  if (authenticate && !options_.rest_password.empty())
    client.set_basic_auth("admin", options_.rest_password);
  httplib::Result res{nullptr, httplib::Error::Unknown};
  if (method == "POST")
    res = client.Post(path, body, "application/json");
  else if (method == "PATCH")
    res = client.Patch(path, body, "application/json");
  else if (method == "PUT")
    res = client.Put(path, body, "application/json");
  else if (method == "DELETE")
    res = client.Delete(path);
  else
    res = client.Get(path);
  if (!res)
    return 0;
  if (answer)
    *answer = res->body;
  return res->status;
}

std::vector<int> LocalCluster::primaryIndexes() const {
  std::vector<int> out;
  for (int i = 0; i < nodes(); ++i)
    if (restGet(i, "/primary") == 200)
      out.push_back(i);
  return out;
}

std::optional<int> LocalCluster::primaryIndex() const {
  auto p = primaryIndexes();
  if (p.size() != 1)
    return std::nullopt;
  return p[0];
}

bool LocalCluster::waitHealthy(Millis timeout) {
  return waitUntil(
      [this] {
        auto p = primaryIndex();
        if (!p)
          return false;
        for (int i = 0; i < nodes(); ++i) {
          if (i == *p)
            continue;
          std::string body;
          if (restGet(i, "/replica", &body) != 200)
            return false;
        }
        auto counted = [this](int node, const char* sql) {
          auto rows = query(nodeParams(node), sql);
          return rows.ok() && !rows->rows.empty() && rows->rows[0][0] ? std::stoi(*rows->rows[0][0])
                                                                      : -1;
        };
        if (options_.replicatefrom.empty())  // every replica streams from the primary
          return counted(*p,
                         "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") ==
                 nodes() - 1;
        for (int i = 0; i < nodes(); ++i)  // some stream from another replica
          if (i != *p && counted(i,
                                 "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = "
                                 "'streaming'") != 1)
            return false;
        return true;
      },
      timeout);
}

ConnParams LocalCluster::nodeParams(int i) const {
  return {{"host", "127.0.0.1"},  {"port", std::to_string(ports_[i].pg)},
          {"user", "postgres"},   {"password", superuser_password_},
          {"dbname", "postgres"}, {"connect_timeout", "2"}};
}

ConnParams LocalCluster::readWriteParams() const {
  auto p = nodeParams(0);
  p["port"] = std::to_string(rw_port_);
  return p;
}

ConnParams LocalCluster::readOnlyParams() const {
  auto p = nodeParams(0);
  p["port"] = std::to_string(ro_port_);
  return p;
}

Result<PgResult> LocalCluster::query(const ConnParams& params, const std::string& sql,
                                     Millis timeout) const {
  auto conn = PgConnection::connect(params, timeout);
  if (!conn.ok())
    return conn.error();
  return conn->query(sql, {}, timeout);
}

std::string LocalCluster::callbackLog(int i) const {
  return fmt::format("{}/{}/callbacks.log", dir_, name(i));
}

std::string LocalCluster::logTails(int lines) const {
  std::string out;
  for (int i = 0; i < nodes(); ++i) {
    std::string text = readFile(fmt::format("{}/{}.agent.log", dir_, name(i)));
    std::vector<std::string> all;
    std::stringstream ss(text);
    for (std::string line; std::getline(ss, line);)
      all.push_back(line);
    out += fmt::format("---- {} agent log (last {} lines)\n", name(i), lines);
    for (size_t k = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
         k < all.size(); ++k)
      out += all[k] + "\n";
  }
  return out;
}

void LocalCluster::stopEtcd() {
  if (etcd_)
    etcd_->stop();
}

Status LocalCluster::restartEtcd() {
  return etcd_->start();
}

void LocalCluster::stopAll() {
  for (int i = 0; i < nodes(); ++i) {
    if (agent_pids_[i] > 0)
      signalProcess(agent_pids_[i], SIGTERM);
  }
  for (int i = 0; i < nodes(); ++i) {
    if (agent_pids_[i] <= 0)
      continue;
    if (!waitProcess(agent_pids_[i], Millis(30000))) {
      signalProcess(agent_pids_[i], SIGKILL);
      waitProcess(agent_pids_[i], Millis(5000));
    }
    agent_pids_[i] = 0;
  }
  // Servers whose agent was killed keep running: stop them too (immediate shutdown).
  for (int i = 0; i < nodes(); ++i) {
    pid_t pm = postmasterPid(i);
    if (pm > 0) {
      signalProcess(pm, SIGQUIT);
      if (!waitUntil([pm] { return !processAlive(pm); }, Millis(10000)))
        signalProcess(pm, SIGKILL);
    }
  }
  if (haproxy_pid_ > 0) {
    signalProcess(haproxy_pid_, SIGTERM);
    if (!waitProcess(haproxy_pid_, Millis(5000)))
      signalProcess(haproxy_pid_, SIGKILL);
    waitProcess(haproxy_pid_, Millis(5000));
    haproxy_pid_ = 0;
  }
  if (etcd_)
    etcd_->stop();
}

}  // namespace pgf::testing
