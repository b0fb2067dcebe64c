#include "ctl/ctl_context.h"

#include "agent/dcs_options.h"

#include <ostream>
#include <thread>

#include <fmt/format.h>

#include "agent/config_sections.h"
#include "dcs/etcd/etcd_dcs.h"

namespace pgf::ctl {
namespace {

Result<std::vector<std::string>> parseEtcdHosts(const std::string& text) {
  std::vector<std::string> hosts;
  std::string item;
  for (char c : text + ",") {
    if (c != ',') {
      if (c != ' ')
        item.push_back(c);
      continue;
    }
    if (item.empty())
      continue;
    auto hp = parseHostPort(item, "--etcd", kDefaultEtcdPort, false);
    if (!hp.ok())
      return hp.error();
    hosts.push_back(hp->host.find(':') != std::string::npos
                        ? fmt::format("[{}]:{}", hp->host, hp->port)
                        : fmt::format("{}:{}", hp->host, hp->port));
    item.clear();
  }
  return hosts;
}

}  // namespace

Result<OutputFormat> parseOutputFormat(const std::string& text) {
  if (text == "pretty")
    return OutputFormat::kPretty;
  if (text == "json")
    return OutputFormat::kJson;
  return makeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown format \"{}\": use pretty or json", text));
}

Result<CtlTarget> resolveTarget(const CtlOptions& options) {
  CtlTarget target;
  if (!options.config_path.empty()) {
    auto loaded = loadAgentConfigFile(options.config_path);
    if (!loaded.ok())
      return loaded.error().wrap(options.config_path);
    target.scope = loaded->config.scope;
    target.namespace_ = loaded->config.namespace_;
    target.etcd = loaded->config.etcd;
    target.api_credentials = {loaded->config.restapi.username, loaded->config.restapi.password};
  }
  if (!options.etcd.empty()) {
    auto hosts = parseEtcdHosts(options.etcd);
    if (!hosts.ok())
      return hosts.error();
    target.etcd.hosts = std::move(hosts).value();
  }
  if (!options.namespace_.empty())
    target.namespace_ = normaliseNamespace(options.namespace_);
  if (!options.scope.empty())
    target.scope = options.scope;

  if (target.etcd.hosts.empty())
    return makeError(ErrorCode::kConfig,
                     "no etcd endpoints: give -c <agent config> or --etcd host:port[,host:port]");
  if (target.scope.empty())
    return makeError(ErrorCode::kConfig,
                     "no cluster named: give -c <agent config>, --scope or the cluster name");
  if (target.scope.find('/') != std::string::npos)
    return makeError(ErrorCode::kConfig,
                     fmt::format("cluster name \"{}\" must not contain '/'", target.scope));
  return target;
}

Result<DcsPtr> connectDcs(const CtlTarget& target, Millis timeout) {
  // The client never writes a member key or takes a lease for reads; the name only has to be
  // one no agent uses.
  EtcdDcsOptions options =
      etcdDcsOptions(target.etcd, target.namespace_, target.scope, "pgfleetctl");
  options.request_timeout = timeout;
  auto dcs = makeEtcdDcs(std::move(options));
  if (!dcs.ok())
    return dcs.error().wrap("connecting to etcd");
  return dcs;
}

Result<ClusterView> loadCluster(const CtlTarget& target, Dcs& dcs) {
  auto cluster = dcs.load();
  if (!cluster.ok()) {
    std::string hosts;
    for (const auto& h : target.etcd.hosts)
      hosts += (hosts.empty() ? "" : ",") + h;
    return cluster.error().wrap(
        fmt::format("reading cluster {} from etcd ({})", target.scope, hosts));
  }
  const ClusterView& c = cluster.value();
  if (!c.initialize && !c.leader && !c.config && c.members.empty())
    return makeError(ErrorCode::kNotFound, fmt::format("no cluster {} in etcd (nothing under {})",
                                                       target.scope, target.keyPrefix()));
  return cluster;
}

int reportFailure(std::ostream& err, const Error& error) {
  err << "pgfleetctl: " << error.message << "\n";
  return 1;
}

Sleeper systemSleeper() {
  static const SystemClock clock;
  return Sleeper{clock, [](Millis d) { std::this_thread::sleep_for(d); }};
}

}  // namespace pgf::ctl
