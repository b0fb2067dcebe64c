// A real pgfleet-broker for integration tests: examples/broker-local.yaml with the local backend
// and its embedded etcd, in a temporary directory, on a free port, instances' ports from a random
// window, and a random password. stop() and cleanUp() end what it started (the broker, every
// instance's agents, PostgreSQLs and HAProxy, the etcd) by their PIDs, never by name.
#pragma once

#include <sys/types.h>

#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"

namespace pgf::testing {

// An answer of the broker's HTTP API, through an independent client (cpp-httplib).
struct BrokerAnswer {
  int status = 0;  // 0: no answer
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

  // Starts the broker and waits until it serves its catalog.
  void start();
  void stop(int sig);

  // One request with the broker's credentials and X-Broker-API-Version `version`.
  BrokerAnswer call(const std::string& method, const std::string& path,
                    const nlohmann::json& body = nullptr, const std::string& version = "2.17");
  // A PUT or PATCH with a body sent as it is.
  BrokerAnswer raw(const std::string& method, const std::string& path, const std::string& payload);

  std::string dir() const { return dir_; }
  // The configuration file (YAML) the broker starts with; a test may rewrite it before start().
  const std::string& configPath() const { return config_; }
  std::string state() const { return dir_ + "/state"; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& password() const { return password_; }
  pid_t pid() const { return pid_; }
  // The last lines of the broker's log, for failure messages.
  std::string log() const;
  // How many instances have a directory in the state directory.
  size_t instanceDirectories() const;

 private:
  std::string dir_, config_, password_;
  int port_ = 0;
  pid_t pid_ = 0;
};

}  // namespace pgf::testing
