#include "postgres/pg_controller.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/process.h"
#include "postgres/basebackup.h"
#include "postgres/config_files.h"
#include "postgres/config_writer.h"
#include "postgres/data_dir.h"
#include "postgres/initdb.h"
#include "postgres/local_probe.h"
#include "postgres/replication_slots.h"
#include "postgres/rewind.h"
#include "postgres/roles.h"
#include "postgres/timeline.h"

namespace pgf {
namespace {

constexpr const char* kDefaultBinDir = "/usr/lib/postgresql/15/bin";
// How often a wait (promotion) re-checks its condition: fast enough not to add visible latency to
// a failover, slow enough to cost nothing.
constexpr Millis kPollInterval{100};
// Enough of the server log to show why a start failed.
constexpr size_t kLogTailBytes = 1500;

std::string absolutePath(const std::string& path) {
  if (path.empty())
    return path;
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  if (ec)
    p = path;
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/')
    s.pop_back();
  return s;
}

std::string parentDir(const std::string& dir) {
  std::string p = std::filesystem::path(dir).parent_path().string();
  return p.empty() ? "." : p;
}

std::string fileSafe(std::string name) {
  for (char& c : name) {
    if (c == '/')
      c = '_';
  }
  return name;
}

std::string seconds(Millis t) {
  return std::to_string(std::max<long long>(1, (t.count() + 999) / 1000));
}

const char* stopModeName(StopMode mode) {
  switch (mode) {
    case StopMode::kSmart:
      return "smart";
    case StopMode::kFast:
      return "fast";
    case StopMode::kImmediate:
      return "immediate";
  }
  return "fast";
}

Millis remaining(MonoTime deadline) {
  return std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
}

template <typename Done>
bool pollUntil(MonoTime deadline, Done done) {
  for (;;) {
    if (done())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::min(kPollInterval, std::max(Millis(1), remaining(deadline))));
  }
}

}  // namespace

LocalPostgresController::LocalPostgresController(PostgresConfig config, std::string member_name,
                                                 std::string scope, PgTimeouts timeouts)
    : name_(std::move(member_name)),
      scope_(std::move(scope)),
      timeouts_(timeouts),
      config_(std::move(config)) {
  data_dir_ = absolutePath(config_.data_dir);
  bin_dir_ = config_.bin_dir.empty() ? kDefaultBinDir : config_.bin_dir;
  std::string parent = data_dir_.empty() ? "." : parentDir(data_dir_);
  pgpass_ = config_.pgpass.empty() ? absolutePath(parent + "/pgpass." + fileSafe(name_))
                                   : absolutePath(config_.pgpass);
  log_file_ = absolutePath(parent + "/" + fileSafe(name_) + ".log");
  // An agent restarting next to a standby keeps the upstream its files name.
  if (!data_dir_.empty() && fileExists(data_dir_ + "/standby.signal")) {
    auto conf = readFile(data_dir_ + "/postgresql.conf");
    if (conf.ok())
      upstream_ = parseUpstreamFromConf(*conf);
    if (!upstream_)
      upstream_ = UpstreamConn{};
  }
}

void LocalPostgresController::updateConfig(PostgresConfig config) {
  std::lock_guard<std::mutex> lock(mu_);
  config.data_dir = config_.data_dir;  // the directory and derived paths stay fixed
  config_ = std::move(config);
}

PgTool LocalPostgresController::tool() const {
  return PgTool{bin_dir_, {{"PGPASSFILE", pgpass_}, {"PGCONNECT_TIMEOUT", "5"}}};
}

bool LocalPostgresController::isRunning(int* pid) const {
  if (data_dir_.empty())
    return false;
  auto pm = readPostmasterPid(data_dir_);
  if (!pm || !postmasterAlive(pm->pid))
    return false;
  if (pid != nullptr)
    *pid = pm->pid;
  return true;
}

Status LocalPostgresController::writeConfiguration(const std::optional<UpstreamConn>& upstream) {
  PostgresConfig cfg;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cfg = config_;
  }
  PGF_TRY(writeConfigFiles(ConfigContext{&cfg, name_, scope_, data_dir_, pgpass_, upstream}),
          "writing configuration");
  std::lock_guard<std::mutex> lock(mu_);
  upstream_ = upstream;
  return okStatus();
}

Result<PgConnection> LocalPostgresController::connectLocal(Millis timeout) const {
  auto pm = readPostmasterPid(data_dir_);
  if (!pm)
    return makeError(ErrorCode::kPostgresUnavailable, "postgresql is not running", true);
  // The socket needs no password (local trust for the superuser); TCP is the fallback when the
  // server has no socket directory.
  std::string host = pm->socket_dir;
  if (host.empty()) {
    host = pm->listen_addr;
    if (host.empty() || host == "*" || host == "0.0.0.0")
      host = "127.0.0.1";
    else if (host == "::")
      host = "::1";
  }
  std::string user;
  int port = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    user = config_.superuser.username;
    port = pm->port > 0 ? pm->port : config_.port();
  }
  ConnParams params{{"host", host},        {"port", std::to_string(port)},
                    {"user", user},        {"dbname", "postgres"},
                    {"passfile", pgpass_}, {"application_name", "pgfleet-agent"}};
  return PgConnection::connect(params, timeout);
}

ConnParams LocalPostgresController::sourceParams(const UpstreamConn& source,
                                                 const PgUser& user) const {
  return ConnParams{{"host", source.host},   {"port", std::to_string(source.port)},
                    {"user", user.username}, {"dbname", "postgres"},
                    {"passfile", pgpass_},   {"application_name", name_}};
}

Result<CommandResult> LocalPostgresController::pgCtl(const std::vector<std::string>& args,
                                                     Millis timeout) const {
  return runPgTool(tool(), "pg_ctl", args, timeout + timeouts_.pg_ctl_slack);
}

std::string LocalPostgresController::logTail() const {
  auto log = readFile(log_file_);
  if (!log.ok())
    return "(no server log)";
  std::string_view text = *log;
  if (text.size() > kLogTailBytes)
    text = text.substr(text.size() - kLogTailBytes);
  return outputForError(text);
}

void LocalPostgresController::stopOrphanedPostmaster() {
  const SeenPostmaster seen = seen_postmaster_;
  seen_postmaster_ = {};
  struct stat cwd {};
  if (!postmasterAlive(seen.pid) ||
      ::stat(fmt::format("/proc/{}/cwd", seen.pid).c_str(), &cwd) != 0 || cwd.st_dev != seen.dev ||
      cwd.st_ino != seen.ino)
    return;  // gone, or another process now
  struct stat dir {};
  if (::stat(data_dir_.c_str(), &dir) == 0 && dir.st_dev == seen.dev && dir.st_ino == seen.ino)
    return;  // still our data directory: it only lost its postmaster.pid
  spdlog::error(
      "the data directory of the running PostgreSQL (pid {}) was removed: stopping it (immediate), "
      "since it can neither be reached nor kept",
      seen.pid);
  ::kill(seen.pid, SIGQUIT);
  const auto deadline = std::chrono::steady_clock::now() + Millis(5000);
  while (postmasterAlive(seen.pid) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(Millis(20));
  if (postmasterAlive(seen.pid))
    ::kill(seen.pid, SIGKILL);
  reapZombieChildren();
}

LocalPostgres LocalPostgresController::probe() {
  std::lock_guard<std::mutex> one_at_a_time(probe_call_mu_);
  LocalPostgres st;
  if (data_dir_.empty())
    return st;
  st.data_dir_empty = !fileExists(data_dir_ + "/PG_VERSION");
  int pid = 0;
  st.running = isRunning(&pid);
  st.postmaster_pid = st.running ? pid : 0;
  if (st.running) {
    struct stat cwd {};
    if (pid != seen_postmaster_.pid && ::stat(fmt::format("/proc/{}/cwd", pid).c_str(), &cwd) == 0)
      seen_postmaster_ = {pid, cwd.st_dev, cwd.st_ino};
  } else if (seen_postmaster_.pid != 0) {
    stopOrphanedPostmaster();
  }
  if (st.data_dir_empty) {
    std::lock_guard<std::mutex> lk(probe_mu_);
    probe_conn_.reset();
    sysid_.clear();
    return st;
  }
  st.in_recovery = fileExists(data_dir_ + "/standby.signal");
  st.rewind_failed = fileExists(data_dir_ + "/" + kRewindFailedMarker);
  st.unstarted_backup = !st.running && fileExists(data_dir_ + "/backup_label");
  // A running server that answers tells everything but its system identifier, which is read once:
  // the probe then costs one query on a kept connection instead of a pg_controldata run and a new
  // connection (it runs several times a second with short leases).
  if (st.running && !sysid_.empty() && queryServer(st)) {
    st.sysid = sysid_;
    st.control_state =
        st.in_recovery ? ControlState::kInArchiveRecovery : ControlState::kInProduction;
    keepStandbyTimeline(st);
    return st;
  }
  auto control = readControlData(bin_dir_, data_dir_, timeouts_.control_data);
  if (control.ok()) {
    applyControlData(*control, st);
    sysid_ = st.sysid;
  } else {
    spdlog::debug("probe: {}", control.error().message);
  }
  if (!st.running) {
    // Judged from the file itself (pg_controldata may fail for other reasons, a timeout say), and
    // from the tool's checksum warning.
    std::error_code ec;
    const auto size = std::filesystem::file_size(data_dir_ + "/global/pg_control", ec);
    st.control_unusable = ec || static_cast<int64_t>(size) != kControlFileSize ||
                          (control.ok() && control->crc_mismatch);
  }
  if (st.running) {
    queryServer(st);
  } else {
    std::lock_guard<std::mutex> lk(probe_mu_);
    probe_conn_.reset();
  }
  if (st.in_recovery && st.following_host.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (upstream_ && !upstream_->host.empty())
      st.following_host = fmt::format("{}:{}", upstream_->host, upstream_->port);
  }
  keepStandbyTimeline(st);
  if (auto lineage = readTimelineHistory(data_dir_, st.timeline))
    st.lineage = std::move(*lineage);
  return st;
}

void LocalPostgresController::keepStandbyTimeline(LocalPostgres& st) {
  // A standby names its timeline only while its WAL receiver streams; between two connections it
  // falls back to its last restartpoint's, which can be older than the WAL it already received.
  // Within one postmaster's life a standby's timeline never goes back, so the highest one seen is
  // kept: paired with the received position, an older one would look like a divergence.
  if (!st.running || !st.in_recovery || !st.accepting) {
    if (!st.running)
      standby_timeline_ = {};
    return;
  }
  if (standby_timeline_.first == st.postmaster_pid)
    st.timeline = std::max(st.timeline, standby_timeline_.second);
  standby_timeline_ = {st.postmaster_pid, st.timeline};
}

bool LocalPostgresController::queryServer(LocalPostgres& st) {
  std::lock_guard<std::mutex> lk(probe_mu_);
  // A kept connection may have died with a restarted server: one fresh attempt after a failure.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!probe_conn_ || !probe_conn_->isOpen()) {
      auto conn = connectLocal(timeouts_.local_connect);
      if (!conn.ok()) {
        spdlog::debug("probe: {}", conn.error().message);
        probe_conn_.reset();
        return false;
      }
      probe_conn_.emplace(std::move(conn).value());
    }
    Status server = applyServerState(*probe_conn_, timeouts_.local_query, st);
    if (server.ok())
      return true;
    spdlog::debug("probe: {}", server.error().message);
    probe_conn_.reset();
  }
  return false;
}

Status LocalPostgresController::createRoles() {
  PostgresConfig cfg;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cfg = config_;
  }
  auto conn = connectLocal(timeouts_.remote_connect);
  if (!conn.ok())
    return conn.error().wrap("connecting to the new server");
  PGF_TRY(suppressStatementLogging(*conn), "creating roles");
  if (!cfg.replication.username.empty() && cfg.replication.username != cfg.superuser.username)
    PGF_TRY(createOrUpdateRole(*conn, cfg.replication, "REPLICATION"), "creating roles");
  if (!cfg.rewind.username.empty() && cfg.rewind.username != cfg.superuser.username) {
    PGF_TRY(createOrUpdateRole(*conn, cfg.rewind, ""), "creating roles");
    PGF_TRY(grantRewindPrivileges(*conn, cfg.rewind.username), "creating roles");
  }
  return okStatus();
}

Status LocalPostgresController::bootstrap() {
  if (data_dir_.empty())
    return makeError(ErrorCode::kConfig, "bootstrap: postgresql.data_dir is not set");
  if (fileExists(data_dir_ + "/PG_VERSION"))
    return makeError(ErrorCode::kAlreadyExists,
                     fmt::format("bootstrap: {} already holds a cluster", data_dir_));
  PostgresConfig cfg;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cfg = config_;
  }
  PGF_TRY(runInitdb(tool(), data_dir_, cfg.superuser, cfg.initdb_options, timeouts_.initdb),
          "bootstrap");
  PGF_TRY(writeConfiguration(std::nullopt), "bootstrap");
  PGF_TRY(start(nullptr, timeouts_.bootstrap_start), "bootstrap");
  auto roles = createRoles();
  if (!roles.ok()) {
    // A primary without its replication role is of no use to the cluster; do not leave it up.
    ignoreError(stop(StopMode::kFast, timeouts_.bootstrap_start), "already failing");
    return roles.error().wrap("bootstrap");
  }
  spdlog::info("bootstrapped a new cluster in {}", data_dir_);
  return okStatus();
}

Status LocalPostgresController::cloneFrom(const UpstreamConn& source) {
  const std::string context = fmt::format("cloning from {}:{}", source.host, source.port);
  if (data_dir_.empty())
    return makeError(ErrorCode::kConfig, context + ": postgresql.data_dir is not set");
  PostgresConfig cfg;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cfg = config_;
  }
  // pg_basebackup needs the password file before the configuration exists.
  PGF_TRY(writePgpassFile(cfg, pgpass_), context);
  std::string conninfo = fmt::format(
      "host={} port={} user={} application_name={} connect_timeout={} {}",
      quoteConninfoValue(source.host), source.port, quoteConninfoValue(cfg.replication.username),
      quoteConninfoValue(name_), kPrimaryConnectTimeoutSeconds, kDeadPeerConninfo);
  spdlog::info("cloning {} from {}:{} with pg_basebackup", data_dir_, source.host, source.port);
  PGF_TRY(runBaseBackup(tool(), data_dir_, conninfo, timeouts_.clone), context);
  PGF_TRY(writeConfiguration(source), context);
  return okStatus();
}

Status LocalPostgresController::start(const UpstreamConn* upstream, Millis timeout) {
  if (data_dir_.empty() || !fileExists(data_dir_ + "/PG_VERSION"))
    return makeError(ErrorCode::kNotFound,
                     fmt::format("starting postgresql: no cluster in \"{}\"", data_dir_));
  if (isRunning())
    return makeError(ErrorCode::kAlreadyExists, "starting postgresql: already running");
  std::optional<UpstreamConn> up;
  if (upstream != nullptr)
    up = *upstream;
  PGF_TRY(writeConfiguration(up), "starting postgresql");
  spdlog::info("starting postgresql in {} as a {}", data_dir_, up ? "standby" : "primary");
  auto run =
      pgCtl({"start", "-D", data_dir_, "-w", "-t", seconds(timeout), "-l", log_file_}, timeout);
  if (run.ok())
    return okStatus();
  if (isRunning()) {
    // Up but not yet accepting connections. A standby may need a long time to reach a consistent
    // state (or its upstream); it is started, and probe() shows it as running, not accepting.
    if (up)
      return okStatus();
    return makeError(
        ErrorCode::kTimeout,
        fmt::format("starting postgresql: not accepting connections after {} ms", timeout.count()),
        true);
  }
  return makeError(
      run.error().code,
      fmt::format("starting postgresql: {}; server log: {}", run.error().message, logTail()),
      run.error().retryable);
}

Status LocalPostgresController::stop(StopMode mode, Millis timeout) {
  if (!isRunning())
    return okStatus();
  spdlog::info("stopping postgresql in {} ({})", data_dir_, stopModeName(mode));
  {
    // A smart shutdown waits for every client, our probe connection included. The fence may stop
    // the server while the loop thread is probing: then it does not wait for the probe (an
    // immediate shutdown does not need the connection closed).
    std::unique_lock<std::mutex> lk(probe_mu_, std::try_to_lock);
    if (lk.owns_lock())
      probe_conn_.reset();
  }
  // Fast and immediate stops signal the postmaster themselves and watch for its exit every 2 ms:
  // pg_ctl stop -w looks only every 100 ms, and a switchover's window includes that wait.
  auto pm = readPostmasterPid(data_dir_);
  if (mode != StopMode::kSmart && pm && postmasterAlive(pm->pid) &&
      ::kill(pm->pid, mode == StopMode::kFast ? SIGINT : SIGQUIT) == 0) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!processAlive(pm->pid)) {
        reapZombieChildren();
        if (!isRunning())
          return okStatus();
      }
      std::this_thread::sleep_for(Millis(2));
    }
    return makeError(
        ErrorCode::kTimeout,
        fmt::format("stopping postgresql: still running after {} ms", timeout.count()));
  }
  auto run = pgCtl(
      {"stop", "-D", data_dir_, "-m", stopModeName(mode), "-w", "-t", seconds(timeout)}, timeout);
  if (!run.ok() && isRunning())
    return run.error().wrap("stopping postgresql");
  return okStatus();
}

Status LocalPostgresController::promote(Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!isRunning())
    return makeError(ErrorCode::kInvalidArgument, "promoting: postgresql is not running");
  // One connection: trigger the promotion without waiting, then poll pg_is_in_recovery() often,
  // because every millisecond here is part of the failover window (pg_ctl promote -w and
  // pg_promote(true) both poll only every 100 ms).
  auto conn = connectLocal(std::min(remaining(deadline), timeouts_.local_connect));
  if (!conn.ok())
    return conn.error().wrap("promoting");
  if (fileExists(data_dir_ + "/standby.signal")) {
    spdlog::info("promoting postgresql in {}", data_dir_);
    auto triggered = conn->query("SELECT pg_catalog.pg_promote(false) AS p", {},
                                 std::min(remaining(deadline), timeouts_.local_query));
    if (!triggered.ok())
      return triggered.error().wrap("promoting");
  }
  bool promoted = false;
  while (!promoted) {
    auto r = conn->query("SELECT pg_catalog.pg_is_in_recovery() AS r", {},
                         std::max(Millis(1), std::min(remaining(deadline), timeouts_.local_query)));
    if (!r.ok())
      return r.error().wrap("promoting: waiting for the end of recovery");
    promoted = r->get(0, "r").value_or("t") == "f";
    if (promoted || std::chrono::steady_clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(Millis(5));
  }
  if (!promoted)
    return makeError(ErrorCode::kTimeout,
                     fmt::format("promoting: still in recovery after {} ms", timeout.count()),
                     true);
  // The configuration now describes a primary (no primary_conninfo). pg_rewind from this node
  // checkpoints first (rewind.cc), so no checkpoint is needed here.
  // The reload goes through the connection at hand (no pg_ctl to start): the promotion is not
  // published until this returns.
  PGF_TRY(writeConfiguration(std::nullopt), "promoting");
  auto reloaded =
      conn->query("SELECT pg_catalog.pg_reload_conf() AS r", {},
                  std::max(Millis(1), std::min(remaining(deadline), timeouts_.local_query)));
  if (!reloaded.ok())
    spdlog::warn("promoting: reloading the configuration: {}", reloaded.error().message);
  spdlog::info("promoted postgresql in {}", data_dir_);
  return okStatus();
}

Status LocalPostgresController::follow(const UpstreamConn& upstream) {
  bool running = isRunning();
  if (running && !fileExists(data_dir_ + "/standby.signal"))
    return makeError(ErrorCode::kInvalidArgument,
                     "following: postgresql runs as a primary (stop and rewind it first)");
  PGF_TRY(writeConfiguration(upstream), "following");
  if (running) {
    auto run = pgCtl({"reload", "-D", data_dir_}, timeouts_.reload);
    if (!run.ok())
      return run.error().wrap("following");
  }
  spdlog::info("following {}:{} (slot \"{}\")", upstream.host, upstream.port, upstream.slot_name);
  return okStatus();
}

Status LocalPostgresController::rewind(const UpstreamConn& source) {
  const std::string context = fmt::format("rewinding from {}:{}", source.host, source.port);
  if (data_dir_.empty() || !fileExists(data_dir_ + "/PG_VERSION"))
    return makeError(ErrorCode::kNotFound, context + ": no cluster in the data directory");
  if (isRunning())
    return makeError(ErrorCode::kInvalidArgument, context + ": postgresql is running");
  PGF_TRY(ensureCleanShutdown(tool(), data_dir_, timeouts_.control_data, timeouts_.crash_recovery),
          context);
  PgUser user;
  {
    std::lock_guard<std::mutex> lock(mu_);
    user = config_.rewind.username.empty() ? config_.superuser : config_.rewind;
  }
  PGF_TRY(
      checkRewindSource(sourceParams(source, user), timeouts_.remote_connect, timeouts_.checkpoint),
      context);
  std::string conninfo = fmt::format(
      "host={} port={} user={} dbname=postgres application_name={} connect_timeout={} "
      "{}",
      quoteConninfoValue(source.host), source.port, quoteConninfoValue(user.username),
      quoteConninfoValue(name_), kPrimaryConnectTimeoutSeconds, kDeadPeerConninfo);
  spdlog::info("running pg_rewind on {} from {}:{}", data_dir_, source.host, source.port);
  auto run = runPgRewind(tool(), data_dir_, conninfo, timeouts_.rewind);
  if (!run.ok()) {
    // pg_rewind may have rewritten part of the directory before it failed or was killed at its
    // timeout: mark it, so that no later loop (nor a restarted agent) rewinds or starts it again.
    // Only a source it could not connect to leaves the directory untouched.
    if (run.error().code != ErrorCode::kPostgresUnavailable)
      ignoreError(writeFileAtomically(data_dir_ + "/" + kRewindFailedMarker,
                                      run.error().message + "\n", 0600),
                  "the agent remembers the failure until it restarts");
    return run.error().wrap(context);
  }
  // pg_rewind copied the source's configuration files: make them this node's again.
  PGF_TRY(writeConfiguration(source), context);
  return okStatus();
}

Status LocalPostgresController::syncReplicationSlots(const std::set<std::string>& slots) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!config_.use_slots)
      return okStatus();
  }
  auto conn = connectLocal(timeouts_.local_connect);
  if (!conn.ok())
    return conn.error().wrap("syncing replication slots");
  auto recovery =
      conn->query("SELECT pg_catalog.pg_is_in_recovery() AS r", {}, timeouts_.local_query);
  if (!recovery.ok())
    return recovery.error().wrap("syncing replication slots");
  if (recovery->get(0, "r").value_or("t") == "t")
    return makeError(ErrorCode::kInvalidArgument, "syncing replication slots: not a primary");
  PGF_TRY(syncPhysicalSlots(*conn, slots), "syncing replication slots");
  return okStatus();
}

Status LocalPostgresController::removeDataDirectory() {
  if (isRunning())
    return makeError(ErrorCode::kInvalidArgument,
                     "removing the data directory: postgresql is running");
  spdlog::warn("removing data directory {}", data_dir_);
  PGF_TRY(removeTree(data_dir_), "removing the data directory");
  std::lock_guard<std::mutex> lock(mu_);
  upstream_.reset();
  return okStatus();
}

Result<std::string> LocalPostgresController::setAsideDataDirectory() {
  if (isRunning())
    return makeError(ErrorCode::kInvalidArgument,
                     "setting the data directory aside: postgresql is running");
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(data_dir_).lexically_normal();
  const std::string prefix = dir.filename().string() + kSetAsideSuffix;
  std::error_code ec;
  for (fs::directory_iterator it(dir.parent_path(), ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().rfind(prefix, 0) == 0)
      return makeError(ErrorCode::kInvalidArgument,
                       fmt::format("setting the data directory aside: {} was set aside before and "
                                   "is still there (remove it, or run pgfleetctl reinit)",
                                   it->path().string()));
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("setting the data directory aside: listing {}: {}",
                                                 dir.parent_path().string(), ec.message()));
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  const std::string target = dir.string() + kSetAsideSuffix + stamp;
  fs::rename(dir, target, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("setting the data directory aside as {}: {}",
                                                 target, ec.message()));
  spdlog::warn("data directory {} set aside as {}", data_dir_, target);
  std::lock_guard<std::mutex> lock(mu_);
  upstream_.reset();
  return target;
}

Result<nlohmann::json> LocalPostgresController::replicationInfo() {
  auto conn = connectLocal(timeouts_.local_connect);
  if (!conn.ok())
    return conn.error().wrap("reading replication info");
  return readReplicationInfo(*conn);
}

Status LocalPostgresController::reload() {
  std::optional<UpstreamConn> up;
  if (fileExists(data_dir_ + "/standby.signal")) {
    std::lock_guard<std::mutex> lock(mu_);
    up = upstream_ ? *upstream_ : UpstreamConn{};
  }
  PGF_TRY(writeConfiguration(up), "reloading");
  if (!isRunning())
    return okStatus();
  auto run = pgCtl({"reload", "-D", data_dir_}, timeouts_.reload);
  if (!run.ok())
    return run.error().wrap("reloading");
  return okStatus();
}

template <typename T>
Result<bool> LocalPostgresController::replaceAndReload(T PostgresConfig::*field, const T& value,
                                                       const char* what) {
  T previous;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (config_.*field == value)
      return false;
    previous = config_.*field;
    config_.*field = value;
  }
  auto reloaded = reload();
  if (!reloaded.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    config_.*field = previous;
    return reloaded.error().wrap(what);
  }
  return true;
}

Result<bool> LocalPostgresController::setClusterParameters(
    const std::map<std::string, std::string>& params) {
  return replaceAndReload(&PostgresConfig::dcs_parameters, params,
                          "applying the cluster's postgresql.parameters");
}

Status LocalPostgresController::setSynchronousStandbyNames(
    const std::optional<std::string>& value) {
  auto changed = replaceAndReload(&PostgresConfig::synchronous_standby_names, value,
                                  "setting synchronous_standby_names");
  return changed.ok() ? okStatus() : Status(changed.error());
}

Status LocalPostgresController::checkpoint(Millis timeout) {
  auto conn = connectLocal(timeouts_.local_connect);
  if (!conn.ok())
    return conn.error().wrap("checkpoint");
  auto done = conn->query("CHECKPOINT", {}, timeout);
  if (!done.ok())
    return done.error().wrap("checkpoint");
  return okStatus();
}

}  // namespace pgf
