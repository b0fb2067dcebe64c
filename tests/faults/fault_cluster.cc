#include "faults/fault_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "support/local_cluster.h"
#include "support/test_files.h"

namespace pgf::faults {
namespace fs = std::filesystem;
using testing::fileTail;
using testing::randomPassword;
using testing::waitUntil;

namespace {

constexpr int kPgPort = 5432;
constexpr int kApiPort = 8008;
constexpr int kEtcdClientPort = 2379;
constexpr int kEtcdPeerPort = 2380;

void stopPid(pid_t pid, int sig, Millis grace) {
  if (pid <= 0)
    return;
  signalProcess(pid, SIGCONT);  // a frozen process cannot act on SIGTERM
  signalProcess(pid, sig);
  if (!waitProcess(pid, grace)) {
    signalProcess(pid, SIGKILL);
    waitProcess(pid, Millis(10000));
  }
}

}  // namespace

FaultCluster::FaultCluster(FaultClusterOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/pgfleet-faults-XXXXXX";
  dir_ = mkdtemp(tmpl);
  auto user = lookupUser("postgres");
  if (user.ok())
    std::tie(uid_, gid_) = *user;
  chmod(dir_.c_str(), 0755);
  if (chown(dir_.c_str(), uid_, gid_) != 0) {
    // The agents then fail to start, which start() reports.
  }
  superuser_password_ = randomPassword();
  replication_password_ = randomPassword();
  agent_pids_.assign(options_.nodes, 0);
  etcd_pids_.assign(options_.etcd_members, 0);
}

FaultCluster::~FaultCluster() {
  stopAll();
  std::error_code ec;
  if (getenv("PGFLEET_KEEP_TEST_DIRS") == nullptr)
    fs::remove_all(dir_, ec);
}

std::string FaultCluster::node(int i) const {
  return fmt::format("node{}", i + 1);
}

std::string FaultCluster::etcdHost(int k) const {
  return fmt::format("etcd{}", k + 1);
}

std::string FaultCluster::etcdHosts() const {
  std::string hosts;
  for (int k = 0; k < options_.etcd_members; ++k)
    hosts += fmt::format("{}{}:{}", hosts.empty() ? "" : ",", lab_->address(etcdHost(k)),
                         kEtcdClientPort);
  return hosts;
}

ConnParams FaultCluster::nodeParams(int i) const {
  return {{"host", lab_->address(node(i))},
          {"port", std::to_string(kPgPort)},
          {"user", "postgres"},
          {"password", superuser_password_},
          {"dbname", "postgres"},
          {"connect_timeout", "2"}};
}

std::string FaultCluster::nodeConfig(int i) const {
  const std::string addr = lab_->address(node(i));
  const std::string subnet = fmt::format("10.{}.0.0/24", options_.net);
  return fmt::format(
      R"(scope: faults
namespace: /service
name: {name}
log:
  level: INFO
restapi:
  listen: {addr}:{api}
  connect_address: {addr}:{api}
etcd3:
  hosts: {etcd}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry}
    maximum_lag_on_failover: 1048576
    synchronous_mode: {sync}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_keep_size: 128MB
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: {addr}:{pg}
  connect_address: {addr}:{pg}
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
    unix_socket_directories: {dir}/{name}
  pg_hba:
    - local all postgres trust
    - local replication postgres trust
    - local all all scram-sha-256
    - host all all {subnet} scram-sha-256
    - host replication all {subnet} scram-sha-256
)",
      fmt::arg("name", node(i)), fmt::arg("addr", addr), fmt::arg("api", kApiPort),
      fmt::arg("etcd", etcdHosts()), fmt::arg("ttl", options_.ttl),
      fmt::arg("loop_wait", options_.loop_wait), fmt::arg("retry", options_.retry_timeout),
      fmt::arg("sync", options_.synchronous_mode ? "true" : "false"), fmt::arg("pg", kPgPort),
      fmt::arg("dir", dir_), fmt::arg("su", superuser_password_),
      fmt::arg("repl", replication_password_), fmt::arg("subnet", subnet));
}

Status FaultCluster::start() {
  std::vector<std::string> hosts;
  for (int k = 0; k < options_.etcd_members; ++k)
    hosts.push_back(etcdHost(k));
  for (int i = 0; i < options_.nodes; ++i)
    hosts.push_back(node(i));
  auto lab = NetLab::create(options_.prefix, options_.net, hosts);
  if (!lab.ok())
    return lab.error();
  lab_ = std::move(lab).value();
  for (int k = 0; k < options_.etcd_members; ++k)
    PGF_TRY(startEtcd(k), "starting " + etcdHost(k));
  // Quorum: every member answers /health with a leader.
  const bool healthy = waitUntil(
      [&] {
        for (int k = 0; k < options_.etcd_members; ++k) {
          httplib::Client http(lab_->address(etcdHost(k)), kEtcdClientPort);
          http.set_connection_timeout(std::chrono::milliseconds(300));
          http.set_read_timeout(std::chrono::milliseconds(1000));
          auto res = http.Get("/health");
          if (!res || res->status != 200 || res->body.find("true") == std::string::npos)
            return false;
        }
        return true;
      },
      Millis(30000));
  if (!healthy)
    return makeError(ErrorCode::kTimeout,
                     "the etcd members never reached a quorum:\n" + logTails(20));
  for (int i = 0; i < options_.nodes; ++i) {
    const std::string home = fmt::format("{}/{}", dir_, node(i));
    fs::create_directories(home);
    if (options_.node_disk_mb > 0) {
      const std::string size = fmt::format("size={}m,mode=0755", options_.node_disk_mb);
      if (::mount("tmpfs", home.c_str(), "tmpfs", 0, size.c_str()) != 0)
        return makeError(ErrorCode::kIo,
                         "cannot mount a file system on " + home + ": " + std::strerror(errno));
      mounts_.push_back(home);
    }
    if (chown(home.c_str(), uid_, gid_) != 0)
      return makeError(ErrorCode::kIo, "cannot give " + home + " to the postgres user");
    std::ofstream(fmt::format("{}/{}.yml", dir_, node(i))) << nodeConfig(i);
    PGF_TRY(startAgent(i), "starting the agent of " + node(i));
  }
  return okStatus();
}

Status FaultCluster::startEtcd(int k) {
  if (etcd_pids_[k] > 0)
    return okStatus();
  const std::string addr = lab_->address(etcdHost(k));
  const std::string client = fmt::format("http://{}:{}", addr, kEtcdClientPort);
  const std::string peer = fmt::format("http://{}:{}", addr, kEtcdPeerPort);
  std::string initial;
  for (int j = 0; j < options_.etcd_members; ++j)
    initial += fmt::format("{}{}=http://{}:{}", initial.empty() ? "" : ",", etcdHost(j),
                           lab_->address(etcdHost(j)), kEtcdPeerPort);
  CommandSpec spec;
  spec.argv = lab_->inHost(
      etcdHost(k),
      {"etcd", "--name", etcdHost(k), "--data-dir", fmt::format("{}/{}", dir_, etcdHost(k)),
       "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls",
       peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", initial,
       "--initial-cluster-state", "new", "--initial-cluster-token", "pgfleet-faults"});
  spec.output_file = fmt::format("{}/{}.log", dir_, etcdHost(k));
  auto pid = spawnProcess(spec);
  if (!pid.ok())
    return pid.error();
  etcd_pids_[k] = *pid;
  return okStatus();
}

void FaultCluster::signalEtcd(int k, int sig) {
  pid_t pid = etcd_pids_[k];
  if (pid <= 0)
    return;
  if (sig == SIGKILL || sig == SIGTERM) {
    stopPid(pid, sig, Millis(10000));
    etcd_pids_[k] = 0;
    return;
  }
  signalProcess(pid, sig);
}

Status FaultCluster::startAgent(int i) {
  if (agent_pids_[i] > 0)
    return okStatus();
  CommandSpec spec;
  spec.argv = lab_->inHost(
      node(i), {options_.agent_binary, fmt::format("{}/{}.yml", dir_, node(i))}, "postgres");
  spec.cwd = dir_;
  spec.env = {{"HOME", dir_}};
  spec.output_file = fmt::format("{}/{}.agent.log", dir_, node(i));
  auto pid = spawnProcess(spec);
  if (!pid.ok())
    return pid.error();
  agent_pids_[i] = *pid;
  return okStatus();
}

void FaultCluster::signalAgent(int i, int sig) {
  pid_t pid = agent_pids_[i];
  if (pid <= 0)
    return;
  if (sig == SIGKILL || sig == SIGTERM) {
    stopPid(pid, sig, Millis(sig == SIGKILL ? 10000 : 90000));
    agent_pids_[i] = 0;
    return;
  }
  signalProcess(pid, sig);
}

std::string FaultCluster::dataDir(int i) const {
  return fmt::format("{}/{}/data", dir_, node(i));
}

int FaultCluster::timeline(int i) const {
  std::string body;
  if (restGet(i, "/patroni", &body) != 200)
    return 0;
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.contains("timeline") || !doc["timeline"].is_number_integer())
    return 0;
  return doc["timeline"].get<int>();
}

pid_t FaultCluster::postmasterPid(int i) const {
  std::ifstream in(dataDir(i) + "/postmaster.pid");
  long pid = 0;
  in >> pid;
  return in ? static_cast<pid_t>(pid) : 0;
}

int FaultCluster::restGet(int i, const std::string& path, std::string* body) const {
  httplib::Client client(lab_->address(node(i)), kApiPort);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(2, 0);
  auto res = client.Get(path.c_str());
  if (!res)
    return 0;
  if (body)
    *body = res->body;
  return res->status;
}

std::vector<int> FaultCluster::primaries() const {
  std::vector<int> out;
  for (int i = 0; i < options_.nodes; ++i)
    if (restGet(i, "/primary") == 200)
      out.push_back(i);
  return out;
}

bool FaultCluster::waitHealthy(Millis timeout) const {
  return waitUntil(
      [this] {
        auto p = primaries();
        if (p.size() != 1)
          return false;
        // Every other node runs as a replica (a clone in progress would count as streaming on
        // the primary's side, through pg_basebackup's own WAL stream).
        for (int i = 0; i < options_.nodes; ++i)
          if (i != p[0] && restGet(i, "/replica") != 200)
            return false;
        auto conn = PgConnection::connect(nodeParams(p[0]), Millis(2000));
        if (!conn.ok())
          return false;
        auto rows =
            conn->query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'");
        return rows.ok() && !rows->rows.empty() && rows->rows[0][0] &&
               std::stoi(*rows->rows[0][0]) == options_.nodes - 1;
      },
      timeout);
}

std::string FaultCluster::logTails(int lines) const {
  std::string out;
  for (int i = 0; i < options_.nodes; ++i)
    out += fmt::format("---- {} agent log (last {} lines)\n{}", node(i), lines,
                       fileTail(fmt::format("{}/{}.agent.log", dir_, node(i)), lines));
  for (int i = 0; i < options_.nodes; ++i)
    out += fmt::format("---- {} postgresql log (last 15 lines)\n{}", node(i),
                       fileTail(fmt::format("{}/{}/{}.log", dir_, node(i), node(i)), 15));
  for (int k = 0; k < options_.etcd_members; ++k)
    out += fmt::format("---- {} log (last 5 lines)\n{}", etcdHost(k),
                       fileTail(fmt::format("{}/{}.log", dir_, etcdHost(k)), 5));
  return out;
}

void FaultCluster::stopAll() {
  for (int i = 0; i < options_.nodes; ++i)
    if (agent_pids_[i] > 0) {
      signalProcess(agent_pids_[i], SIGCONT);
      signalProcess(agent_pids_[i], SIGTERM);
    }
  for (int i = 0; i < options_.nodes; ++i) {
    stopPid(agent_pids_[i], SIGTERM, Millis(30000));
    agent_pids_[i] = 0;
    // A server whose agent was killed outlives it: stop it by the PID it wrote.
    pid_t pm = postmasterPid(i);
    if (pm > 0 && processAlive(pm)) {
      signalProcess(pm, SIGCONT);
      signalProcess(pm, SIGQUIT);
      if (!waitUntil([pm] { return !processAlive(pm); }, Millis(10000)))
        signalProcess(pm, SIGKILL);
    }
  }
  for (int k = 0; k < options_.etcd_members; ++k) {
    stopPid(etcd_pids_[k], SIGTERM, Millis(10000));
    etcd_pids_[k] = 0;
  }
  lab_.reset();
  for (const auto& m : mounts_)
    ::umount2(m.c_str(), MNT_DETACH);
  mounts_.clear();
}

Status FaultCluster::fillDisk(int i) {
  const std::string path = fmt::format("{}/{}/filler", dir_, node(i));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return makeError(ErrorCode::kIo, "cannot create " + path + ": " + std::strerror(errno));
  static const std::string chunk(1 << 20, '\0');
  while (::write(fd, chunk.data(), chunk.size()) > 0) {
  }
  // The last partial chunk: byte by byte would be slow; 4 KiB pages are what tmpfs allocates.
  while (::write(fd, chunk.data(), 4096) > 0) {
  }
  ::close(fd);
  return okStatus();
}

void FaultCluster::freeDisk(int i) {
  ::unlink(fmt::format("{}/{}/filler", dir_, node(i)).c_str());
}

}  // namespace pgf::faults
