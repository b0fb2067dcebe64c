// pgfleet-broker as a process: it refuses to start on a wrong configuration, saying what is wrong,
// and serves the catalog over HTTP to a platform with the right credentials and API version.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "support/ports.h"
#include "support/test_files.h"

namespace pgf::testing {
namespace {

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pgfleet-broker-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    password_ = randomPassword();
    port_ = pickFreePort();
  }
  void TearDown() override {
    if (pid_ > 0) {
      signalProcess(pid_, SIGKILL);
      waitProcess(pid_, Millis(5000));
    }
    // The etcd the broker started outlives it by design: stopped here by its recorded PID.
    std::ifstream etcd_pid(dir_ / "state" / "etcd.pid");
    pid_t etcd = 0;
    if (etcd_pid >> etcd && etcd > 1) {
      signalProcess(etcd, SIGTERM);
      waitProcess(etcd, Millis(10000));
    }
    std::filesystem::remove_all(dir_);
  }
  CommandSpec broker(const std::string& config) {
    CommandSpec spec;
    spec.argv = {PGFLEET_BROKER_BIN, "--config", config};
    spec.env = {{"PGFLEET_BROKER_PASSWORD", password_},
                {"PGFLEET_BROKER_LISTEN", "127.0.0.1:" + std::to_string(port_)},
                {"PGFLEET_STATE_DIR", (dir_ / "state").string()}};
    spec.output_file = (dir_ / "broker.log").string();
    return spec;
  }
  std::string writeFile(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
  std::string password_;
  int port_ = 0;
  pid_t pid_ = 0;
};

TEST_F(BrokerTest, ServesTheShippedExamplesCatalogAndStopsOnSigterm) {
  // The shipped example, with the embedded etcd on a free port.
  std::ifstream example(std::string(PGFLEET_SOURCE_DIR) + "/examples/broker-local.yaml");
  std::stringstream text;
  text << example.rdbuf();
  const auto etcd_ports = pickFreePorts(2);
  const std::string config =
      writeFile("broker.yaml",
                text.str() + fmt::format("\netcd:\n  embedded_port: {}\n  embedded_peer_port: {}\n",
                                         etcd_ports[0], etcd_ports[1]));
  std::filesystem::create_directories(dir_ / "templates");
  std::filesystem::copy_file(
      std::string(PGFLEET_SOURCE_DIR) + "/examples/templates/postgresql.yaml.mustache",
      dir_ / "templates" / "postgresql.yaml.mustache");
  auto pid = spawnProcess(broker(config));
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  pid_ = *pid;
  httplib::Client client("127.0.0.1", port_);
  client.set_basic_auth("broker", password_);
  client.set_connection_timeout(1);
  auto get = [&] {
    return client.Get("/v2/catalog", {{"X-Broker-API-Version", "2.14"},
                                      {"X-Broker-API-Request-Identity", "req-1"}});
  };
  auto res = get();
  for (int i = 0; i < 600 && !res; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    res = get();
  }
  ASSERT_TRUE(res) << "the broker did not answer within 60 s:\n"
                   << fileTail((dir_ / "broker.log").string(), 20)
                   << fileTail((dir_ / "state" / "etcd.log").string(), 20);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(res->get_header_value("X-Broker-API-Request-Identity"), "req-1");
  auto doc = nlohmann::json::parse(res->body, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << res->body;
  EXPECT_EQ(doc["services"][0]["name"], "postgresql");
  EXPECT_EQ(doc["services"][0]["plans"].size(), 5u);
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "state"));

  httplib::Client stranger("127.0.0.1", port_);
  auto refused = stranger.Get("/v2/catalog", {{"X-Broker-API-Version", "2.17"}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);

  ASSERT_TRUE(signalProcess(pid_, SIGTERM));
  EXPECT_TRUE(waitProcess(pid_, Millis(10000))) << "the broker did not stop on SIGTERM";
  pid_ = 0;
}

TEST_F(BrokerTest, RefusesToStartOnAWrongConfigurationSayingWhatIsWrong) {
  const std::string config =
      writeFile("bad.yaml",
                "broker: {username: broker, state_dir: /tmp/x}\n"
                "service: {id: s1}\n"
                "plans:\n"
                "  - {id: p1, name: single-small, description: d, nodes: 2}\n");
  CommandSpec spec = broker(config);
  spec.output_file.clear();
  auto run = runCommand(spec, Millis(10000));
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(run->exit_code, 2);
  EXPECT_NE(run->output.find("plans[0].nodes: must be 1 or 3, got 2"), std::string::npos)
      << run->output;

  spec.env.erase("PGFLEET_BROKER_PASSWORD");
  auto no_password = runCommand(spec, Millis(10000));
  ASSERT_TRUE(no_password.ok());
  EXPECT_EQ(no_password->exit_code, 2);
  EXPECT_NE(no_password->output.find("broker.password: is required"), std::string::npos)
      << no_password->output;
}

}  // namespace
}  // namespace pgf::testing
