#include "support/etcd_process.h"

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/process.h"
#include "support/ports.h"
#include "support/test_files.h"

namespace pgf::testing {

namespace fs = std::filesystem;

EtcdProcess::EtcdProcess(std::string data_dir, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)),
      log_file_(data_dir_ + ".log"),
      extra_args_(std::move(extra_args)) {
  auto ports = pickFreePorts(2);
  client_port_ = ports[0];
  peer_port_ = ports[1];
}

EtcdProcess::~EtcdProcess() {
  stop();
}

std::string EtcdProcess::endpoint() const {
  return fmt::format("127.0.0.1:{}", client_port_);
}

std::string EtcdProcess::url() const {
  return "http://" + endpoint();
}

bool EtcdProcess::running() const {
  return pid_ > 0 && processAlive(pid_);
}

Status EtcdProcess::start(Millis timeout) {
  if (pid_ > 0)
    return okStatus();
  std::error_code ec;
  fs::create_directories(fs::path(data_dir_).parent_path(), ec);
  const std::string client = fmt::format("http://127.0.0.1:{}", client_port_);
  const std::string peer = fmt::format("http://127.0.0.1:{}", peer_port_);
  CommandSpec spec;
  spec.argv = {"etcd", "--name", "t", "--data-dir", data_dir_, "--listen-client-urls", client,
               "--advertise-client-urls", client, "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer, "--initial-cluster", "t=" + peer,
               // Tests revisit old revisions through watches; never compact under them.
               "--auto-compaction-retention", "0"};
  spec.argv.insert(spec.argv.end(), extra_args_.begin(), extra_args_.end());
  spec.output_file = log_file_;
  auto pid = spawnProcess(spec);
  if (!pid.ok())
    return pid.error().wrap("spawning etcd");
  pid_ = *pid;

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  httplib::Client http("127.0.0.1", client_port_);
  http.set_connection_timeout(std::chrono::milliseconds(200));
  http.set_read_timeout(std::chrono::milliseconds(1000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitProcess(pid_, Millis(0))) {
      pid_ = 0;
      return makeError(ErrorCode::kCommandFailed, "etcd exited during startup:\n" + logTail());
    }
    auto res = http.Get("/health");
    if (res && res->status == 200 && res->body.find("true") != std::string::npos)
      return okStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string tail = logTail();
  stop();
  return makeError(ErrorCode::kTimeout, "etcd did not become healthy in time:\n" + tail);
}

void EtcdProcess::stop() {
  if (pid_ <= 0)
    return;
  signalProcess(pid_, SIGCONT);  // a paused etcd cannot act on SIGTERM
  signalProcess(pid_, SIGTERM);
  if (!waitProcess(pid_, Millis(5000))) {
    signalProcess(pid_, SIGKILL);
    waitProcess(pid_, Millis(5000));
  }
  pid_ = 0;
}

void EtcdProcess::pause() {
  if (pid_ > 0)
    signalProcess(pid_, SIGSTOP);
}

void EtcdProcess::resume() {
  if (pid_ > 0)
    signalProcess(pid_, SIGCONT);
}

std::string EtcdProcess::logTail(int lines) const {
  return fileTail(log_file_, lines);
}

int etcdKeyCount(int client_port, const std::string& prefix) {
  std::string end = prefix;
  end.back() = static_cast<char>(end.back() + 1);
  httplib::Client client("127.0.0.1", client_port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  nlohmann::json req = {
      {"key", base64Encode(prefix)}, {"range_end", base64Encode(end)}, {"count_only", true}};
  auto res = client.Post("/v3/kv/range", req.dump(), "application/json");
  if (!res || res->status != 200)
    return -1;
  auto body = nlohmann::json::parse(res->body, nullptr, false);
  if (!body.is_object())
    return -1;
  // The gateway leaves out zero values and sends int64s as strings.
  return std::stoi(body.value("count", std::string("0")));
}

TempDir::TempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr)
    std::abort();  // a test without a scratch directory cannot run at all
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace pgf::testing
