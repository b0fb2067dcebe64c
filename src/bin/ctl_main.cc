// pgfleetctl: cluster operations from the operator's terminal, with patronictl's verbs and options.
// Each verb lives in src/ctl/<verb>.cc; this file only parses the command line.
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "ctl/ctl_context.h"
#include "ctl/list.h"

namespace {

// How long one etcd request may take before pgfleetctl reports etcd unreachable.
constexpr double kDefaultTimeoutSeconds = 5;

int runListCommand(const pgf::ctl::CtlOptions& options, const std::string& format_name,
                   double timeout_seconds) {
  auto format = pgf::ctl::parseListFormat(format_name);
  if (!format.ok()) {
    std::cerr << "pgfleetctl: " << format.error().message << "\n";
    return 1;
  }
  auto target = pgf::ctl::resolveTarget(options);
  if (!target.ok()) {
    std::cerr << "pgfleetctl: " << target.error().message << "\n";
    return 1;
  }
  auto dcs =
      pgf::ctl::connectDcs(*target, pgf::Millis(static_cast<int64_t>(timeout_seconds * 1000)));
  if (!dcs.ok()) {
    std::cerr << "pgfleetctl: " << dcs.error().message << "\n";
    return 1;
  }
  return pgf::ctl::runList(*target, **dcs, *format, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pgfleetctl: operate pgfleet (and Patroni) PostgreSQL clusters"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the verb

  pgf::ctl::CtlOptions options;
  double timeout_seconds = kDefaultTimeoutSeconds;
  app.add_option("-c,--config", options.config_path,
                 "agent configuration file (Patroni-style YAML) that names the cluster and etcd");
  app.add_option("--etcd", options.etcd, "etcd endpoints: host:port[,host:port...]");
  app.add_option("--namespace", options.namespace_, "DCS namespace (default /service)");
  app.add_option("--scope", options.scope, "cluster name");
  app.add_option("--timeout", timeout_seconds, "seconds to wait for etcd")
      ->check(CLI::PositiveNumber);

  std::string format = "pretty";
  std::string cluster_name;
  auto* list = app.add_subcommand("list", "list the members of a cluster, like patronictl list");
  list->add_option("cluster", cluster_name, "cluster name (default: --scope or the config's)");
  list->add_option("-f,--format", format, "output format: pretty, json or tsv")
      ->check(CLI::IsMember({"pretty", "json", "tsv"}));

  CLI11_PARSE(app, argc, argv);
  pgf::initLogging("warning", "pgfleetctl");

  if (list->parsed()) {
    if (!cluster_name.empty())
      options.scope = cluster_name;
    return runListCommand(options, format, timeout_seconds);
  }
  return 1;
}
