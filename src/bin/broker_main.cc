// pgfleet-broker --config FILE: the Open Service Broker API for dedicated PostgreSQL instances.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "broker/broker_config.h"
#include "broker/osb_api.h"
#include "common/http_server.h"
#include "common/log.h"

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

  std::error_code ec;
  std::filesystem::create_directories(config.state_dir, ec);
  if (ec || ::chmod(config.state_dir.c_str(), 0700) != 0) {
    spdlog::critical("state directory {}: {}", config.state_dir,
                     ec ? ec.message() : std::strerror(errno));
    return 2;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  pgf::OsbApi api(config.catalog, config.username, config.password);
  pgf::HttpServer server([&api](const pgf::HttpRequest& req) { return api.handle(req); });
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
  server.stop();
  spdlog::info("stopped");
  return 0;
}
