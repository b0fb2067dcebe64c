// pgfleet-broker --config FILE: the Open Service Broker API for dedicated PostgreSQL instances.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <unistd.h>

#include "broker/broker_config.h"
#include "broker/instances.h"
#include "broker/osb_api.h"
#include "broker/store.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/process.h"
#include "deploy/embedded_etcd.h"
#include "deploy/local_backend.h"

int main(int argc, char** argv) {
  CLI::App app{
      "pgfleet-broker: dedicated PostgreSQL instances through the Open Service Broker API"};
  std::string config_path;
  bool validate_only = false;
  bool show_version = false;
  app.add_option("-c,--config", config_path, "the broker's YAML configuration file");
  app.add_flag("--validate-config", validate_only, "check the configuration and exit");
  app.add_flag("--version", show_version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (show_version) {
    std::printf("pgfleet-broker %s\n", PGFLEET_VERSION);
    return 0;
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "pgfleet-broker: --config FILE is required\n%s", app.help().c_str());
    return 2;
  }
  auto loaded = pgf::loadBrokerConfigFile(config_path, pgf::processEnvironment());
  if (!loaded.ok()) {
    std::fprintf(stderr, "pgfleet-broker: %s: %s\n", config_path.c_str(),
                 loaded.error().message.c_str());
    return 2;
  }
  const pgf::BrokerConfig& config = loaded->config;
  pgf::initLogging(config.log_level, "broker");
  for (const auto& w : loaded->warnings)
    spdlog::warn("{}: {}", config_path, w);
  if (validate_only) {
    std::printf("%s: configuration is valid (%zu plans)\n", config_path.c_str(),
                config.catalog.plans.size());
    return 0;
  }

  // Before any thread starts (each thread inherits its creator's nice value); what the broker
  // starts (agents, HAProxy, etcd) is set back to 0.
  if (config.nice != 0 && ::setpriority(PRIO_PROCESS, 0, config.nice) != 0)
    spdlog::warn("broker.nice {}: {}; running at the inherited priority", config.nice,
                 std::strerror(errno));

  // Others may pass through to the instances' own private directories; the store is 0600.
  std::error_code ec;
  std::filesystem::create_directories(config.state_dir, ec);
  if (ec || ::chmod(config.state_dir.c_str(), 0711) != 0) {
    spdlog::critical("state directory {}: {}", config.state_dir,
                     ec ? ec.message() : std::strerror(errno));
    return 2;
  }
  auto store = pgf::Store::open(config.state_dir + "/broker.db");
  if (!store.ok()) {
    spdlog::critical("{}", store.error().message);
    return 2;
  }

  std::vector<std::string> etcd_hosts = config.etcd;
  if (etcd_hosts.empty()) {
    // Started and owned by the broker, and left running when it stops: the nodes need it.
    pgf::EmbeddedEtcdOptions eo;
    eo.state_dir = config.state_dir;
    eo.client_port = config.embedded_etcd_port;
    eo.peer_port = config.embedded_etcd_peer_port;
    if (::geteuid() == 0) {
      auto ids = pgf::lookupUser(config.run_as);
      if (!ids.ok()) {
        spdlog::critical("broker.run_as: {}", ids.error().message);
        return 2;
      }
      eo.uid = ids->first;
      eo.gid = ids->second;
    }
    pgf::EmbeddedEtcd etcd(eo);
    if (auto st = etcd.start(pgf::Millis(60000)); !st.ok()) {
      spdlog::critical("the embedded etcd: {}", st.error().message);
      return 2;
    }
    spdlog::info("embedded etcd on {} (data in {})", etcd.endpoint(), etcd.dataDir());
    etcd_hosts = {etcd.endpoint()};
  }

  pgf::LocalBackendOptions bo;
  bo.state_dir = config.state_dir;
  bo.run_as = config.run_as;
  bo.etcd = etcd_hosts;
  bo.agent_bin = config.agent_bin;
  if (bo.agent_bin.empty())
    bo.agent_bin =
        (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "pgfleet-agent")
            .string();
  auto backend = pgf::LocalBackend::create(bo);
  if (!backend.ok()) {
    spdlog::critical("{}", backend.error().message);
    return 2;
  }

  pgf::InstanceServiceOptions io;
  io.catalog = config.catalog;
  io.templates_dir = config.templates_dir;
  io.etcd_hosts = etcd_hosts;
  io.port_low = config.port_low;
  io.port_high = config.port_high;
  io.pg_bin_dir = config.pg_bin_dir;
  io.ready_timeout = pgf::Millis(std::chrono::seconds(config.provision_timeout_seconds));
  // The supervisor outlives the service: the service's workers hold and release instances on it
  // until they are joined.
  pgf::SupervisorOptions so;
  so.interval = pgf::Millis(std::chrono::seconds(config.heal_interval_seconds));
  so.grace = pgf::Millis(std::chrono::seconds(config.heal_grace_seconds));
  const pgf::InstanceService* service = nullptr;
  pgf::Supervisor supervisor(so, **store, **backend, [&service](const pgf::InstanceRecord& r) {
    return service->manifestOf(r);
  });
  pgf::InstanceService instances(io, **store, **backend);
  service = &instances;
  if (config.heal_interval_seconds > 0)
    instances.setSupervisor(&supervisor);
  // Pools of pre-provisioned instances, for the plans whose strategy is pool or hybrid. Declared
  // after the service: stopped (its builds cancelled) before the service goes.
  pgf::PoolHooks hooks;
  hooks.create = [&instances](const pgf::Plan& plan) { return instances.createPooled(plan); };
  hooks.build = [&instances](const std::string& id, const std::atomic<bool>& cancel) {
    return instances.buildPooled(id, cancel);
  };
  hooks.destroy = [&instances](const std::string& id) { return instances.destroyPooled(id); };
  hooks.busy = [&instances] { return instances.claimsFinishing(); };
  pgf::PoolKeeper pool(config.catalog, **store, hooks);
  instances.setPool(&pool);
  instances.resumeUnfinished();
  pool.start();
  for (const auto& plan : config.catalog.plans)
    if (plan.provisioning.pooled())
      spdlog::info("plan {}: {} with a pool of {} (built {} at a time)", plan.name,
                   pgf::strategyName(plan.provisioning.strategy), plan.provisioning.pool_size,
                   plan.provisioning.refill_concurrency);
  if (config.heal_interval_seconds > 0) {
    supervisor.start();
    spdlog::info("self-healing: every instance checked every {} s", config.heal_interval_seconds);
  } else {
    spdlog::warn("self-healing is off (broker.heal_interval: 0)");
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  pgf::FleetApi fleet(config.catalog, **store);
  fleet.setSupervisor(&supervisor);
  fleet.setPool(&pool);
  pgf::OsbApi api(config.catalog, config.username, config.password, &instances, &fleet);
  pgf::HttpServerOptions server_options;
  // Binds and unbinds run deferred, one at a time per instance (its claim): a platform binding
  // many instances at once is not turned away with 503.
  server_options.max_deferred = 64;
  pgf::HttpServer server([&api](const pgf::HttpRequest& req) { return api.handle(req); },
                         server_options);
  if (auto st = server.start(config.listen_host, config.listen_port); !st.ok()) {
    spdlog::critical("listening on {}:{}: {}", config.listen_host, config.listen_port,
                     st.error().message);
    return 2;
  }
  spdlog::info("serving the Open Service Broker API on {}:{} ({} plans)", config.listen_host,
               server.port(), config.catalog.plans.size());
  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  spdlog::info("received signal {}: shutting down", sig);
  supervisor.stop();
  server.stop();
  pool.stop();
  spdlog::info("stopped");
  return 0;
}
