// pgfleet-agent <config.yml>: one per PostgreSQL node. Runs as the PostgreSQL user, never as root.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "agent/agent.h"
#include "agent/cluster_actions.h"
#include "agent/config.h"
#include "agent/dcs_options.h"
#include "agent/peer_status.h"
#include "agent/rest_api.h"
#include "common/clock.h"
#include "common/log.h"
#include "postgres/pg_controller.h"

namespace {

// How long one etcd request or one question to a peer may take for a REST API action.
constexpr pgf::Millis kActionDcsTimeout{2000};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pgfleet-agent: PostgreSQL high-availability agent (Patroni-compatible)"};
  std::string config_path;
  bool validate_only = false;
  bool show_version = false;
  app.add_option("config", config_path, "Patroni-style YAML configuration file");
  app.add_flag("--validate-config", validate_only, "check the configuration file and exit");
  app.add_flag("--version", show_version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (show_version) {
    std::printf("pgfleet-agent %s\n", PGFLEET_VERSION);
    return 0;
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "pgfleet-agent: a configuration file is required\n%s", app.help().c_str());
    return 2;
  }

  auto loaded = pgf::loadAgentConfigFile(config_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "pgfleet-agent: %s: %s\n", config_path.c_str(),
                 loaded.error().message.c_str());
    return 2;
  }
  pgf::AgentConfig config = loaded->config;
  pgf::initLogging(config.log_level, "agent");
  for (const auto& w : loaded->warnings)
    spdlog::warn("{}: {}", config_path, w);
  if (validate_only) {
    std::printf("%s: configuration is valid\n", config_path.c_str());
    return 0;
  }
  if (geteuid() == 0) {
    spdlog::critical(
        "refusing to run as root: PostgreSQL cannot run as root; start pgfleet-agent as the user "
        "that owns the data directory (for example: runuser -u postgres -- pgfleet-agent {})",
        config_path);
    return 2;
  }

  // Forked first, while this process has no other thread.
  // Its pid is kept beside the data directory, where the next agent finds it.
  std::string data_dir = config.postgresql.data_dir;
  while (data_dir.size() > 1 && data_dir.back() == '/')
    data_dir.pop_back();
  auto watchdog = pgf::Watchdog::start(config.postgresql.data_dir, data_dir + ".watchdog.pid");
  if (!watchdog.ok()) {
    spdlog::critical("watchdog: {}", watchdog.error().message);
    return 2;
  }

  // Signals go to one thread that asks the agent to stop; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Become the parent of PostgreSQL's processes once pg_ctl has exited, so that a crashed
  // postmaster is reaped at once (see reapZombieChildren) instead of whenever init gets to it.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    spdlog::warn("could not become a child subreaper; crash restarts may wait for init");

  pgf::SystemClock clock;
  pgf::EtcdDcsOptions etcd =
      pgf::etcdDcsOptions(config.etcd, config.namespace_, config.scope, config.name);
  etcd.ttl_seconds = config.bootstrap_dcs.ttl;
  auto dcs = pgf::makeEtcdDcs(etcd);
  // The REST API's actions (switchover, configuration changes) have a client of their own, so that
  // they never wait behind the HA loop's requests (nor it behind theirs).
  auto actions_dcs = pgf::makeEtcdDcs(etcd);
  if (!dcs.ok() || !actions_dcs.ok()) {
    spdlog::critical("etcd3: {}", (dcs.ok() ? actions_dcs : dcs).error().message);
    return 2;
  }
  (*actions_dcs)->setRequestTimeout(kActionDcsTimeout);
  auto postgres =
      std::make_unique<pgf::LocalPostgresController>(config.postgresql, config.name, config.scope);
  pgf::Agent agent(config, std::move(dcs).value(), std::move(postgres), clock, watchdog->get());

  pgf::ClusterActions actions(
      **actions_dcs,
      [&config, &agent](const pgf::ClusterView& cluster) {
        auto peers = pgf::fetchPeerStatuses(cluster, config.name, kActionDcsTimeout);
        peers.push_back(pgf::selfPeerStatus(agent.freshStatus()));
        return peers;
      },
      [&agent] { return agent.status(); }, clock);
  actions.setNodeControl(
      {[&agent](pgf::Millis t) { return agent.restartPostgres(t); },
       [&agent](pgf::Millis t) { return agent.reloadPostgres(t); },
       [&agent](pgf::Millis t) { return agent.reinitialize(t); },
       [&agent](const pgf::ScheduledRestart& r) { return agent.scheduleRestart(r); },
       [&agent] { return agent.cancelScheduledRestart(); }});
  pgf::RestServer rest(config.restapi.listen, [&agent] { return agent.status(); });
  rest.setActions(&actions);
  rest.setCredentials(config.restapi.username, config.restapi.password);
  rest.setPrimaryCheckObserver([&agent] { agent.notePrimaryCheck(); });
  rest.setFailsafeHandler(
      [&agent](const std::string& body) { return agent.acceptFailsafeHeartbeat(body); });
  auto started = rest.start();
  if (!started.ok()) {
    spdlog::critical("rest api: {}", started.error().message);
    return 2;
  }

  std::thread signal_thread([&agent, signals] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0)
        continue;
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: configuration reload is not supported yet; ignoring");
        continue;
      }
      spdlog::info("received signal {}: shutting down", sig);
      agent.requestStop();
      return;
    }
  });
  signal_thread.detach();

  int rc = agent.run();
  rest.stop();
  spdlog::info("stopped");
  return rc;
}
