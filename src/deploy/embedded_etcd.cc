#include "deploy/embedded_etcd.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "common/http_client.h"
#include "common/process.h"
#include "deploy/local_backend.h"
#include "postgres/data_dir.h"

namespace pgf {

EmbeddedEtcd::EmbeddedEtcd(EmbeddedEtcdOptions options) : options_(std::move(options)) {}

std::string EmbeddedEtcd::endpoint() const {
  return fmt::format("127.0.0.1:{}", options_.client_port);
}

std::string EmbeddedEtcd::dataDir() const {
  return options_.state_dir + "/etcd";
}

bool EmbeddedEtcd::running() const {
  return recordedProcess(options_.state_dir + "/etcd.pid", dataDir()).has_value();
}

bool EmbeddedEtcd::healthy() const {
  HttpConnection conn("127.0.0.1", options_.client_port);
  auto res =
      conn.request("GET", "/health", {}, "", std::chrono::steady_clock::now() + Millis(1000));
  return res.ok() && res->status == 200 && res->body.find("true") != std::string::npos;
}

Status EmbeddedEtcd::start(Millis timeout) {
  const std::string log = options_.state_dir + "/etcd.log";
  auto pid = recordedProcess(options_.state_dir + "/etcd.pid", dataDir());
  if (!pid) {
    std::error_code ec;
    std::filesystem::create_directories(dataDir(), ec);
    if (ec)
      return makeError(ErrorCode::kIo, fmt::format("creating {}: {}", dataDir(), ec.message()));
    ::chmod(dataDir().c_str(), 0700);
    if (options_.uid && ::chown(dataDir().c_str(), *options_.uid,
                                options_.gid.value_or(static_cast<gid_t>(-1))) != 0)
      return makeError(ErrorCode::kIo, "chown " + dataDir());
    const std::string client = fmt::format("http://127.0.0.1:{}", options_.client_port);
    const std::string peer = fmt::format("http://127.0.0.1:{}", options_.peer_port);
    CommandSpec spec;
    spec.nice = 0;  // the normal priority, whatever the broker's
    spec.argv = {"etcd",
                 "--name",
                 "pgfleet",
                 "--data-dir",
                 dataDir(),
                 "--listen-client-urls",
                 client,
                 "--advertise-client-urls",
                 client,
                 "--listen-peer-urls",
                 peer,
                 "--initial-advertise-peer-urls",
                 peer,
                 "--initial-cluster",
                 "pgfleet=" + peer,
                 "--auto-compaction-mode",
                 "revision",
                 "--auto-compaction-retention",
                 "10000"};
    spec.uid = options_.uid;
    spec.gid = options_.gid;
    spec.cwd = options_.state_dir;
    spec.output_file = log;
    spec.pid_file = options_.state_dir + "/etcd.pid";
    auto spawned = spawnProcess(spec);
    if (!spawned.ok())
      return spawned.error().wrap("starting etcd");
    pid = *spawned;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    waitProcess(*pid, Millis(0));
    if (!processAlive(*pid))
      return makeError(ErrorCode::kCommandFailed,
                       fmt::format("etcd exited during startup (see {})", log));
    if (healthy())
      return okStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return makeError(
      ErrorCode::kTimeout,
      fmt::format("etcd did not answer /health on {} in time (see {})", endpoint(), log));
}

void EmbeddedEtcd::stop() {
  auto pid = recordedProcess(options_.state_dir + "/etcd.pid", dataDir());
  if (!pid)
    return;
  signalProcess(*pid, SIGTERM);
  for (int i = 0; i < 100 && processAlive(*pid); ++i) {
    waitProcess(*pid, Millis(0));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (processAlive(*pid)) {
    signalProcess(*pid, SIGKILL);
    waitProcess(*pid, Millis(5000));
  }
}

}  // namespace pgf
