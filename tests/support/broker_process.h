// A real pgfleet-broker for integration tests: examples/broker-local.yaml with the local backend
// and its embedded etcd, in a temporary directory, on a free port, instances' ports from a random
// window, and a random password. stop() and cleanUp() end what it started (the broker, every
// instance's agents, PostgreSQLs and HAProxy, the etcd) by their PIDs, never by name.
// BrokerTest is the gtest fixture around one, with the OSB requests tests make at hand.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/result.h"
#include "postgres/pg_connection.h"

namespace pgf::testing {

// The ids of examples/broker-local.yaml.
inline constexpr const char* kService = "e0bbd32b-944e-4a1e-bf83-db238487ce21";
inline constexpr const char* kSingleSmall = "3b8c5ecc-e36f-4066-8cc0-22124da2cc00";
inline constexpr const char* kClusterSmall = "347487b1-13d0-4e3f-bf75-3091dc23a86f";

// An answer of the broker's HTTP API, through an independent client (cpp-httplib).
struct BrokerAnswer {
  int status = 0;  // 0: no answer (the connection failed or was cut)
  nlohmann::json body;
  std::string text;
};

class BrokerProcess {
 public:
  // Makes the directory and writes the configuration (gtest assertions on failure).
  void setUp();
  // Stops the broker (SIGKILL), then what it left running, and removes the directory unless
  // PGFLEET_KEEP_TEST_DIRS is set.
  void cleanUp();

  // Starts the broker with `env` added to its environment (PGFLEET_BROKER_KILL_AT, say) and waits
  // until it serves its catalog.
  void start(const std::map<std::string, std::string>& env = {});
  void stop(int sig);
  // Waits until the broker ends on its own (a PGFLEET_BROKER_KILL_AT step); false when it still
  // runs after `timeout`.
  bool waitExit(Millis timeout);

  // One request with the broker's credentials and X-Broker-API-Version `version`.
  BrokerAnswer call(const std::string& method, const std::string& path,
                    const nlohmann::json& body = nullptr, const std::string& version = "2.17");
  // A PUT or PATCH with a body sent as it is.
  BrokerAnswer raw(const std::string& method, const std::string& path, const std::string& payload);
  // Polls the instance's last_operation until it is no longer "in progress"; the final answer.
  BrokerAnswer waitOperation(const std::string& instance, Millis timeout);

  std::string dir() const { return dir_; }
  // The configuration file (YAML) the broker starts with; a test may rewrite it before start().
  const std::string& configPath() const { return config_; }
  // Rewrites the configuration file through `edit` (before start()).
  void editConfig(const std::function<void(std::string&)>& edit) const;
  std::string state() const { return dir_ + "/state"; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& password() const { return password_; }
  pid_t pid() const { return pid_; }
  // The last lines of the broker's log, for failure messages.
  std::string log() const;
  // How many instances have a directory in the state directory.
  size_t instanceDirectories() const;
  // The live processes recorded for every instance: agents, PostgreSQL servers and HAProxy.
  std::vector<pid_t> recordedPids() const;
  // How many keys the embedded etcd holds under the instances' namespace (/service/); -1 when it
  // does not answer.
  int dcsKeys() const;

 private:
  std::string dir_, config_, password_;
  int port_ = 0;
  int etcd_port_ = 0;
  pid_t pid_ = 0;
};

// A provision's body for `plan` of examples/broker-local.yaml's service.
nlohmann::json provisionBody(const std::string& plan,
                             nlohmann::json parameters = nlohmann::json::object());
// "?service_id=...&plan_id=...&accepts_incomplete=true" for a DELETE of an instance of `plan`.
std::string deleteQuery(const std::string& plan);
// The pid a PID file holds (its first number); 0 when there is none.
pid_t pidIn(const std::string& file);
// A connection with a binding's credentials, to its read-write or read-only endpoint.
Result<PgConnection> connectWith(const nlohmann::json& credentials, bool read_only = false);

// A test with one broker (set up, never started) that it ends in TearDown whatever happened.
class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override { broker_.setUp(); }
  void TearDown() override { broker_.cleanUp(); }

  std::string state() const { return broker_.state(); }
  void startBroker(const std::map<std::string, std::string>& env = {}) { broker_.start(env); }
  void stopBroker(int sig) { broker_.stop(sig); }
  std::string brokerLog() const { return broker_.log(); }
  BrokerAnswer call(const std::string& method, const std::string& path,
                    const nlohmann::json& body = nullptr, const std::string& version = "2.17") {
    return broker_.call(method, path, body, version);
  }
  BrokerAnswer raw(const std::string& method, const std::string& path, const std::string& payload) {
    return broker_.raw(method, path, payload);
  }
  BrokerAnswer waitOperation(const std::string& instance, Millis timeout) {
    return broker_.waitOperation(instance, timeout);
  }
  size_t instanceDirectories() const { return broker_.instanceDirectories(); }

  BrokerProcess broker_;
};

}  // namespace pgf::testing
