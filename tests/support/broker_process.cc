#include "support/broker_process.h"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include "common/process.h"
#include "support/etcd_process.h"
#include "support/local_cluster.h"
#include "support/ports.h"
#include "support/test_files.h"

namespace pgf::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

}  // namespace

void BrokerProcess::setUp() {
  char tmpl[] = "/tmp/pgfleet-broker-it-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  dir_ = tmpl;
  fs::permissions(dir_, fs::perms(0711));
  password_ = randomPassword();
  port_ = pickFreePort();
  // Instances' ports from a random window of 200 below the kernel's ephemeral range (where a
  // client's connection could take one): the broker skips any that are taken.
  std::random_device rd;
  const int low = 20000 + static_cast<int>(rd() % 60) * 200;
  std::ifstream example(std::string(PGFLEET_SOURCE_DIR) + "/examples/broker-local.yaml");
  std::stringstream text;
  text << example.rdbuf();
  std::string config = text.str();
  config.replace(config.find("broker:\n"), std::string("broker:\n").size(),
                 fmt::format("broker:\n  ports: {}-{}\n  templates_dir: {}/examples/templates\n",
                             low, low + 199, PGFLEET_SOURCE_DIR));
  auto etcd_ports = pickFreePorts(2);
  etcd_port_ = etcd_ports[0];
  config += fmt::format("\netcd:\n  embedded_port: {}\n  embedded_peer_port: {}\n", etcd_ports[0],
                        etcd_ports[1]);
  config_ = dir_ + "/broker.yaml";
  std::ofstream(config_) << config;
}

void BrokerProcess::cleanUp() {
  stop(SIGKILL);
  // What the test left behind after a failure: every instance's processes, by their PID files,
  // then the embedded etcd.
  for (pid_t pid : recordedPids()) {
    signalProcess(pid, SIGKILL);
    waitProcess(pid, Millis(5000));
  }
  if (pid_t etcd = pidIn(state() + "/etcd.pid")) {
    signalProcess(etcd, SIGTERM);
    waitProcess(etcd, Millis(10000));
  }
  std::error_code ec;
  if (getenv("PGFLEET_KEEP_TEST_DIRS") == nullptr)
    fs::remove_all(dir_, ec);
}

void BrokerProcess::start(const std::map<std::string, std::string>& env) {
  CommandSpec spec;
  spec.argv = {PGFLEET_BROKER_BIN, "--config", config_};
  spec.env = {{"PGFLEET_BROKER_USER", "broker"},
              {"PGFLEET_BROKER_PASSWORD", password_},
              {"PGFLEET_BROKER_LISTEN", "127.0.0.1:" + std::to_string(port_)},
              {"PGFLEET_STATE_DIR", state()}};
  for (const auto& [key, value] : env)
    spec.env[key] = value;
  spec.output_file = dir_ + "/broker.log";
  auto pid = spawnProcess(spec);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  pid_ = *pid;
  ASSERT_TRUE(
      waitUntil([&] { return call("GET", "/v2/catalog").status == 200; }, Millis(seconds(60))))
      << log();
}

void BrokerProcess::stop(int sig) {
  if (pid_ <= 0)
    return;
  signalProcess(pid_, sig);
  waitProcess(pid_, Millis(30000));
  pid_ = 0;
}

bool BrokerProcess::waitExit(Millis timeout) {
  if (pid_ <= 0)
    return true;
  if (!waitProcess(pid_, timeout))
    return false;
  pid_ = 0;
  return true;
}

void BrokerProcess::editConfig(const std::function<void(std::string&)>& edit) const {
  std::ifstream in(config_);
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  edit(config);
  std::ofstream(config_) << config;
}

std::string BrokerProcess::log() const {
  return fileTail(dir_ + "/broker.log", 40);
}

BrokerAnswer BrokerProcess::call(const std::string& method, const std::string& path,
                                 const json& body, const std::string& version) {
  httplib::Client client("127.0.0.1", port_);
  client.set_basic_auth("broker", password_);
  client.set_connection_timeout(2);
  client.set_read_timeout(60);
  httplib::Headers headers = {{"X-Broker-API-Version", version}};
  std::string payload = body.is_null() ? "" : body.dump();
  httplib::Result res{nullptr, httplib::Error::Unknown};
  if (method == "PUT")
    res = client.Put(path, headers, payload, "application/json");
  else if (method == "PATCH")
    res = client.Patch(path, headers, payload, "application/json");
  else if (method == "DELETE")
    res = client.Delete(path, headers);
  else
    res = client.Get(path, headers);
  BrokerAnswer a;
  if (!res)
    return a;
  a.status = res->status;
  a.text = res->body;
  a.body = json::parse(res->body, nullptr, false);
  return a;
}

BrokerAnswer BrokerProcess::raw(const std::string& method, const std::string& path,
                                const std::string& payload) {
  httplib::Client client("127.0.0.1", port_);
  client.set_basic_auth("broker", password_);
  client.set_read_timeout(30);
  httplib::Headers headers = {{"X-Broker-API-Version", "2.17"}};
  auto res = method == "PUT" ? client.Put(path, headers, payload, "application/json")
                             : client.Patch(path, headers, payload, "application/json");
  BrokerAnswer a;
  if (res) {
    a.status = res->status;
    a.body = json::parse(res->body, nullptr, false);
  }
  return a;
}

BrokerAnswer BrokerProcess::waitOperation(const std::string& instance, Millis timeout) {
  BrokerAnswer last;
  waitUntil(
      [&] {
        last = call("GET", "/v2/service_instances/" + instance + "/last_operation");
        return last.status != 200 || last.body.value("state", "") != "in progress";
      },
      timeout);
  return last;
}

size_t BrokerProcess::instanceDirectories() const {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(state() + "/instances", ec);
       !ec && it != fs::directory_iterator(); ++it)
    ++n;
  return n;
}

std::vector<pid_t> BrokerProcess::recordedPids() const {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& inst : fs::directory_iterator(state() + "/instances", ec)) {
    for (const auto& node : fs::directory_iterator(inst.path(), ec))
      for (const char* file : {"agent.pid", "data/postmaster.pid"})
        if (pid_t pid = pidIn(node.path() / file); pid > 0 && processAlive(pid))
          out.push_back(pid);
    if (pid_t pid = pidIn(inst.path() / "haproxy.pid"); pid > 0 && processAlive(pid))
      out.push_back(pid);
  }
  return out;
}

int BrokerProcess::dcsKeys() const {
  return etcdKeyCount(etcd_port_, "/service/");
}

json provisionBody(const std::string& plan, json parameters) {
  return {{"service_id", kService},
          {"plan_id", plan},
          {"organization_guid", "org-1"},
          {"space_guid", "space-1"},
          {"parameters", std::move(parameters)}};
}

std::string deleteQuery(const std::string& plan) {
  return fmt::format("?service_id={}&plan_id={}&accepts_incomplete=true", kService, plan);
}

pid_t pidIn(const std::string& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  return in >> pid && pid > 1 ? pid : 0;
}

Result<PgConnection> connectWith(const json& credentials, bool read_only) {
  ConnParams p = {{"host", credentials.value("hostname", "")},
                  {"port", std::to_string(read_only ? credentials.value("read_only_port", 0)
                                                    : credentials.value("port", 0))},
                  {"user", credentials.value("username", "")},
                  {"password", credentials.value("password", "")},
                  {"dbname", credentials.value("name", "")}};
  return PgConnection::connect(p, Millis(5000));
}

}  // namespace pgf::testing
