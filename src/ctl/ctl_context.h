// What every pgfleetctl verb needs: which cluster to act on (etcd endpoints, namespace, scope) and
// a DCS client for it. Like patronictl, the cluster comes from an agent's configuration file
// (-c/--config), and the command line can name or override each part (--etcd, --namespace,
// --scope, or a verb's cluster-name argument).
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

#include "agent/config.h"
#include "common/clock.h"
#include "common/result.h"
#include "dcs/dcs.h"

namespace pgf::ctl {

struct CtlOptions {
  std::string config_path;  // -c/--config: an agent's Patroni-style YAML ("" = none)
  std::string etcd;         // --etcd host:port[,host:port...] ("" = from the config file)
  std::string namespace_;   // --namespace ("" = from the config file, else /service)
  std::string scope;        // --scope or the verb's cluster name ("" = from the config file)
};

// HTTP basic credentials for the members' REST APIs (restapi.authentication of the config file).
// Both empty: none are sent.
struct ApiCredentials {
  std::string username;
  std::string password;  // never printed

  bool empty() const { return username.empty() && password.empty(); }
};

struct CtlTarget {
  std::string scope;
  std::string namespace_ = "/service";  // normalised as the agent normalises it
  EtcdSettings etcd;
  ApiCredentials api_credentials;

  // "/service/demo/": where the cluster's keys live, for messages.
  std::string keyPrefix() const { return namespace_ + "/" + scope + "/"; }
};

// What a verb prints on stdout: patronictl-style tables (or YAML) for people, or JSON for scripts.
enum class OutputFormat { kPretty, kJson };

// "pretty" or "json"; an error for anything else.
Result<OutputFormat> parseOutputFormat(const std::string& text);

// Merges the config file (when given) with the command-line overrides. kConfig errors name what is
// missing ("no etcd endpoints: give -c <agent config> or --etcd host:port").
Result<CtlTarget> resolveTarget(const CtlOptions& options);

// A read-mostly DCS client for the target cluster. Calls give up after `timeout` with
// kDcsUnavailable when no etcd endpoint answers.
Result<DcsPtr> connectDcs(const CtlTarget& target, Millis timeout);

// The cluster as the DCS shows it now. Errors say what was read where: "reading cluster demo from
// etcd (127.0.0.1:2379): ...", or "no cluster demo in etcd (nothing under /service/demo/)" when
// none of its keys exists.
Result<ClusterView> loadCluster(const CtlTarget& target, Dcs& dcs);

// Writes the one line "pgfleetctl: <message>" to `err` and returns the exit code 1.
int reportFailure(std::ostream& err, const Error& error);

// How the verbs that wait let time pass: the system clock and a real sleep in pgfleetctl; in tests
// a FakeClock and a sleep that advances it.
struct Sleeper {
  const Clock& clock;
  std::function<void(Millis)> sleep;
};
Sleeper systemSleeper();

}  // namespace pgf::ctl
