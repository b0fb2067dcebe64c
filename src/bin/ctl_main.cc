// pgfleetctl: cluster operations from the operator's terminal, with patronictl's verbs and options,
// and the broker's verbs (catalog, create, update, delete, bind, unbind, instances, show, pools).
// Each verb lives in src/ctl/; this file only parses the command line.
#include <algorithm>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "ctl/broker_bind.h"
#include "ctl/broker_catalog.h"
#include "ctl/broker_instance.h"
#include "ctl/broker_instances.h"
#include "ctl/ctl_context.h"
#include "ctl/edit_config.h"
#include "ctl/history.h"
#include "ctl/list.h"
#include "ctl/pause.h"
#include "ctl/reinit.h"
#include "ctl/rest_client.h"
#include "ctl/restart.h"
#include "ctl/switchover.h"

namespace {

using pgf::ctl::CtlTarget;
using pgf::ctl::OutputFormat;

// How long one etcd request (or one short REST API request) may take before pgfleetctl gives up.
constexpr double kDefaultTimeoutSeconds = 5;
// The broker verbs without --timeout: one request may take a minute (a bind creates a role on the
// instance), and an operation half an hour (a provision waits for every node to be healthy).
constexpr pgf::Millis kBrokerRequestTimeout{60000};
constexpr pgf::Millis kBrokerWaitTimeout{1800000};

struct Globals {
  pgf::ctl::CtlOptions options;
  double timeout_seconds = kDefaultTimeoutSeconds;
  bool timeout_given = false;  // --timeout was on the command line
  pgf::ctl::BrokerOptions broker;

  pgf::Millis timeout() const { return pgf::Millis(static_cast<int64_t>(timeout_seconds * 1000)); }
};

// Finds the broker and runs `verb` with a client for it and how long to wait for an operation.
int withBroker(const Globals& globals,
               const std::function<int(pgf::ctl::BrokerClient&, pgf::Millis wait)>& verb) {
  auto target = pgf::ctl::resolveBroker(globals.broker, pgf::ctl::processEnvironment());
  if (!target.ok())
    return pgf::ctl::reportFailure(std::cerr, target.error());
  static pgf::ctl::HttpMemberApi transport;
  pgf::ctl::BrokerClient broker(transport, *target,
                                globals.timeout_given ? globals.timeout() : kBrokerRequestTimeout);
  return verb(broker, globals.timeout_given ? globals.timeout() : kBrokerWaitTimeout);
}

// Resolves the cluster (the verb's cluster name wins), connects to etcd and runs `verb`.
int withCluster(const Globals& globals, const std::string& cluster_name,
                const std::function<int(const CtlTarget&, pgf::Dcs&)>& verb) {
  pgf::ctl::CtlOptions options = globals.options;
  if (!cluster_name.empty())
    options.scope = cluster_name;
  auto target = pgf::ctl::resolveTarget(options);
  if (!target.ok())
    return pgf::ctl::reportFailure(std::cerr, target.error());
  auto dcs = pgf::ctl::connectDcs(*target, globals.timeout());
  if (!dcs.ok())
    return pgf::ctl::reportFailure(std::cerr, dcs.error());
  return verb(*target, **dcs);
}

// CLI11 has already checked the name.
OutputFormat outputFormat(const std::string& name) {
  return pgf::ctl::parseOutputFormat(name).valueOr(OutputFormat::kPretty);
}

CLI::App* addVerb(CLI::App& app, const std::string& name, const std::string& help,
                  std::string& cluster_name) {
  auto* verb = app.add_subcommand(name, help);
  verb->add_option("cluster", cluster_name, "cluster name (default: --scope or the config's)");
  return verb;
}

void addFormat(CLI::App* verb, std::string& format) {
  verb->add_option("-f,--format", format, "output format: pretty or json")
      ->check(CLI::IsMember({"pretty", "json"}));
}

// The broker's verbs: their command line, and running the one given.
class BrokerVerbs {
 public:
  // Adds the verbs to `app`; their -f goes to `format`.
  void add(CLI::App& app, std::string& format) {
    catalog_ = app.add_subcommand("catalog", "show the broker's service plans");
    create_ = app.add_subcommand("create", "create a service instance and wait until it is ready");
    create_->add_option("instance-id", create_request_.instance_id, "the new instance's id")
        ->required();
    create_->add_option("--plan", create_request_.plan, "the plan's name or id")->required();
    create_->add_option("--organization-guid", create_request_.organization_guid,
                        "sent as organization_guid (default pgfleetctl)");
    create_->add_option("--space-guid", create_request_.space_guid,
                        "sent as space_guid (default pgfleetctl)");
    update_ = app.add_subcommand("update", "change a service instance's plan or parameters");
    update_->add_option("instance-id", update_request_.instance_id, "the instance's id")
        ->required();
    update_->add_option("--plan", update_request_.plan, "the new plan's name or id");
    for (auto* verb : {create_, update_}) {
      verb->add_option("-p,--parameter", settings_,
                       "a parameter KEY=VALUE (VALUE as JSON if it parses, else a string)")
          ->allow_extra_args(false);
      verb->add_option("--parameters", parameters_json_, "the parameters as a JSON object");
    }
    delete_ = app.add_subcommand("delete", "delete a service instance and everything it has");
    delete_->add_option("instance-id", instance_id_, "the instance's id")->required();
    for (auto* verb : {create_, update_, delete_})
      verb->add_flag("--no-wait", no_wait_, "return once the broker accepted the request");

    bind_ = app.add_subcommand("bind", "create a binding: a role and its credentials");
    unbind_ = app.add_subcommand("unbind", "remove a binding: its role is dropped");
    for (auto* verb : {bind_, unbind_}) {
      verb->add_option("instance-id", instance_id_, "the instance's id")->required();
      verb->add_option("binding-id", binding_id_, "the binding's id")->required();
    }
    instances_ = app.add_subcommand("instances", "list the broker's service instances");
    show_ = app.add_subcommand("show", "show one service instance in detail");
    show_->add_option("instance-id", instance_id_, "the instance's id")->required();
    pools_ = app.add_subcommand("pools", "show the pools of pre-provisioned instances");
    for (auto* verb :
         {catalog_, create_, update_, delete_, bind_, unbind_, instances_, show_, pools_})
      addFormat(verb, format);
  }

  bool parsed() const {
    for (auto* verb :
         {catalog_, create_, update_, delete_, bind_, unbind_, instances_, show_, pools_})
      if (verb->parsed())
        return true;
    return false;
  }

  // Runs the verb that was given.
  int run(const Globals& globals, OutputFormat format) {
    const pgf::ctl::VerbOutput output{format, std::cout, std::cerr, isatty(STDERR_FILENO) == 1};
    const pgf::ctl::Sleeper sleeper = pgf::ctl::systemSleeper();
    return withBroker(globals, [&](pgf::ctl::BrokerClient& broker, pgf::Millis wait) {
      const pgf::ctl::WaitOptions wait_options{!no_wait_, wait};
      if (catalog_->parsed())
        return pgf::ctl::runCatalog(broker, format, std::cout, std::cerr);
      if (create_->parsed()) {
        create_request_.settings = settings_;
        create_request_.parameters_json = parameters_json_;
        create_request_.wait = wait_options;
        return pgf::ctl::runCreate(broker, create_request_, sleeper, output);
      }
      if (update_->parsed()) {
        update_request_.settings = settings_;
        update_request_.parameters_json = parameters_json_;
        update_request_.wait = wait_options;
        return pgf::ctl::runUpdate(broker, update_request_, sleeper, output);
      }
      if (delete_->parsed())
        return pgf::ctl::runDelete(broker, instance_id_, wait_options, sleeper, output);
      if (bind_->parsed())
        return pgf::ctl::runBind(broker, instance_id_, binding_id_, output);
      if (unbind_->parsed())
        return pgf::ctl::runUnbind(broker, instance_id_, binding_id_, output);
      if (instances_->parsed())
        return pgf::ctl::runInstances(broker, output);
      if (pools_->parsed())
        return pgf::ctl::runPools(broker, output);
      return pgf::ctl::runShow(broker, instance_id_, output);
    });
  }

 private:
  CLI::App* catalog_ = nullptr;
  CLI::App* create_ = nullptr;
  CLI::App* update_ = nullptr;
  CLI::App* delete_ = nullptr;
  CLI::App* bind_ = nullptr;
  CLI::App* unbind_ = nullptr;
  CLI::App* instances_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* pools_ = nullptr;
  pgf::ctl::CreateRequest create_request_;
  pgf::ctl::UpdateRequest update_request_;
  std::vector<std::string> settings_;
  std::string parameters_json_;
  std::string instance_id_;
  std::string binding_id_;
  bool no_wait_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "pgfleetctl: operate pgfleet (and Patroni) PostgreSQL clusters, and pgfleet-broker's "
      "instances"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the verb

  Globals globals;
  app.add_option("-c,--config", globals.options.config_path,
                 "agent configuration file (Patroni-style YAML) that names the cluster and etcd, "
                 "and holds the REST API credentials");
  app.add_option("--etcd", globals.options.etcd, "etcd endpoints: host:port[,host:port...]");
  app.add_option("--namespace", globals.options.namespace_, "DCS namespace (default /service)");
  app.add_option("--scope", globals.options.scope, "cluster name");
  auto* timeout_option =
      app.add_option("--timeout", globals.timeout_seconds,
                     "seconds to wait for etcd and for a member's REST API; for the broker verbs, "
                     "for each request and for an operation to end")
          ->check(CLI::PositiveNumber);
  app.add_option("--broker", globals.broker.url,
                 "the broker's URL (default: PGFLEET_BROKER_URL, else http://127.0.0.1:8080)");
  app.add_option("--broker-user", globals.broker.username,
                 "the broker's basic-auth user (default: PGFLEET_BROKER_USER, else broker)");
  app.add_option("--password-file", globals.broker.password_file,
                 "a file holding the broker's password (default: PGFLEET_BROKER_PASSWORD, else "
                 "/var/lib/pgfleet/broker.password when readable)");

  std::string format = "pretty";
  std::string cluster_name;
  bool force = false;  // accepted for patronictl compatibility: pgfleetctl never prompts
  auto* list =
      addVerb(app, "list", "list the members of a cluster, like patronictl list", cluster_name);
  list->add_option("-f,--format", format, "output format: pretty, json or tsv")
      ->check(CLI::IsMember({"pretty", "json", "tsv"}));

  pgf::ctl::SwitchoverRequest switchover_request;
  auto* switchover =
      addVerb(app, "switchover", "hand leadership from the leader to a replica", cluster_name);
  switchover->add_option("--leader,--primary,--master", switchover_request.leader,
                         "the current leader (default: the leader in the DCS)");
  switchover->add_option("--candidate", switchover_request.candidate,
                         "the member to become leader (default: the agent picks)");
  switchover->add_option("--scheduled", switchover_request.scheduled,
                         "when: an ISO 8601 time with a zone, or now (default)");
  switchover->add_flag("--force", force, "accepted for patronictl compatibility (no prompts)");
  addFormat(switchover, format);

  std::string candidate;
  auto* failover = addVerb(app, "failover", "make a given member the leader", cluster_name);
  failover->add_option("--candidate", candidate, "the member to become leader (required)");
  failover->add_flag("--force", force, "accepted for patronictl compatibility (no prompts)");
  addFormat(failover, format);

  pgf::ctl::PauseOptions pause_options;
  auto* pause =
      addVerb(app, "pause", "disable automatic failover (maintenance mode)", cluster_name);
  auto* resume = addVerb(app, "resume", "enable automatic failover again", cluster_name);
  for (auto* verb : {pause, resume}) {
    verb->add_flag("--wait", pause_options.wait,
                   "wait until every member reports the change (up to 30 s)");
    addFormat(verb, format);
  }

  auto* show_config =
      addVerb(app, "show-config", "print the cluster's dynamic configuration", cluster_name);
  addFormat(show_config, format);

  pgf::ctl::EditConfigRequest edit_request;
  auto* edit_config =
      addVerb(app, "edit-config", "change the cluster's dynamic configuration", cluster_name);
  edit_config->add_option("-s,--set", edit_request.settings, "set KEY=VALUE (a.b.c for nesting)")
      ->allow_extra_args(false);
  edit_config
      ->add_option("-p,--pg", edit_request.pg_settings, "set PostgreSQL parameter NAME=VALUE")
      ->allow_extra_args(false);
  edit_config->add_option("--apply", edit_request.apply_file,
                          "merge a YAML/JSON file into the configuration (- for stdin)");
  edit_config->add_option("--replace", edit_request.replace_file,
                          "replace the configuration with a YAML/JSON file (- for stdin)");
  edit_config->add_flag("-q,--quiet", edit_request.quiet, "do not show the change");
  edit_config->add_flag("--force", force, "accepted for patronictl compatibility (no prompts)");

  auto* history = addVerb(app, "history", "show the timeline history", cluster_name);
  addFormat(history, format);

  pgf::ctl::RestartRequest restart_request;
  std::string restart_role = "any";
  auto* restart =
      addVerb(app, "restart", "restart PostgreSQL on members, one at a time, the leader last",
              cluster_name);
  restart->add_option("member", restart_request.members, "members to restart (default: all)");
  restart
      ->add_option("-r,--role", restart_role,
                   "restart only a member whose PostgreSQL runs with this role")
      ->check(CLI::IsMember({"primary", "replica", "any", "master"}));
  restart->add_flag("--pending", restart_request.pending,
                    "restart only a member whose PostgreSQL needs a restart");
  restart->add_option("--scheduled", restart_request.scheduled,
                      "when: an ISO 8601 time with a zone (each agent restarts then), or now");
  restart->add_flag("--force", force, "accepted for patronictl compatibility (no prompts)");
  addFormat(restart, format);

  std::vector<std::string> reload_members;
  auto* reload =
      addVerb(app, "reload", "make members reload PostgreSQL's configuration", cluster_name);
  reload->add_option("member", reload_members, "members to reload (default: all)");
  reload->add_flag("--force", force, "accepted for patronictl compatibility (no prompts)");
  addFormat(reload, format);

  pgf::ctl::ReinitRequest reinit_request;
  bool reinit_wait = false;  // accepted for patronictl compatibility: the answer comes at the end
  auto* reinit = addVerb(app, "reinit",
                         "clone members again from the leader, one at a time, in the order named",
                         cluster_name);
  reinit->add_option("member", reinit_request.members, "members to reinitialize (at least one)");
  reinit->add_flag("--force", reinit_request.force,
                   "send \"force\": true (pgfleetctl never prompts)");
  reinit->add_flag("--wait", reinit_wait,
                   "accepted for patronictl compatibility (pgfleetctl always waits)");
  addFormat(reinit, format);

  BrokerVerbs broker_verbs;
  broker_verbs.add(app, format);

  CLI11_PARSE(app, argc, argv);
  pgf::initLogging("warning", "pgfleetctl");
  globals.timeout_given = timeout_option->count() > 0;

  if (broker_verbs.parsed())
    return broker_verbs.run(globals, outputFormat(format));
  pgf::ctl::HttpMemberApi api;
  auto run = [&](const std::function<int(const CtlTarget&, pgf::Dcs&)>& verb) {
    return withCluster(globals, cluster_name, verb);
  };
  if (list->parsed()) {
    auto list_format = pgf::ctl::parseListFormat(format);
    if (!list_format.ok())
      return pgf::ctl::reportFailure(std::cerr, list_format.error());
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runList(t, dcs, *list_format, std::cout, std::cerr);
    });
  }
  if (switchover->parsed())
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runSwitchover(t, dcs, api, switchover_request, outputFormat(format),
                                     std::cout, std::cerr);
    });
  if (failover->parsed())
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runFailover(t, dcs, api, candidate, outputFormat(format), std::cout,
                                   std::cerr);
    });
  if (pause->parsed() || resume->parsed()) {
    pause_options.pause = pause->parsed();
    pause_options.request_timeout = globals.timeout();
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runPause(t, dcs, api, pause_options, outputFormat(format),
                                pgf::ctl::systemSleeper(), std::cout, std::cerr);
    });
  }
  if (show_config->parsed())
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runShowConfig(t, dcs, outputFormat(format), std::cout, std::cerr);
    });
  if (edit_config->parsed())
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runEditConfig(t, dcs, edit_request, std::cin, pgf::ctl::editWithEditor,
                                     std::cout, std::cerr);
    });
  if (history->parsed())
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runHistory(t, dcs, outputFormat(format), std::cout, std::cerr);
    });
  if (restart->parsed()) {
    // CLI11 has already checked the role. --timeout may lengthen the wait for each member, never
    // shorten it below the agent's own restart wait.
    restart_request.role =
        pgf::ctl::parseRestartRole(restart_role).valueOr(pgf::ctl::RestartRole::kAny);
    restart_request.timeout = std::max(pgf::ctl::kRestartTimeout, globals.timeout());
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runRestart(t, dcs, api, restart_request, outputFormat(format), std::cout,
                                  std::cerr);
    });
  }
  if (reload->parsed())
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runReload(t, dcs, api, reload_members,
                                 std::max(pgf::ctl::kReloadTimeout, globals.timeout()),
                                 outputFormat(format), std::cout, std::cerr);
    });
  if (reinit->parsed()) {
    // --timeout may lengthen the wait for each member, never shorten it below the time a clone
    // of the leader's data can take.
    reinit_request.timeout = std::max(pgf::ctl::kReinitTimeout, globals.timeout());
    return run([&](const CtlTarget& t, pgf::Dcs& dcs) {
      return pgf::ctl::runReinit(t, dcs, api, reinit_request, outputFormat(format), std::cout,
                                 std::cerr);
    });
  }
  return 1;
}
