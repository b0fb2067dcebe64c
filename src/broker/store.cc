#include "broker/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <utility>

#include <fmt/format.h>

namespace pgf {
namespace {

// 1: instances, bindings, operations, journal, ports; 2: events and health; 3: instances.pool.
constexpr int kSchemaVersion = 3;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS instances (
  id TEXT PRIMARY KEY,
  service_id TEXT NOT NULL,
  plan_id TEXT NOT NULL,
  parameters TEXT NOT NULL,
  context TEXT NOT NULL,
  organization_guid TEXT NOT NULL,
  space_guid TEXT NOT NULL,
  maintenance_version TEXT NOT NULL,
  deployment TEXT NOT NULL,
  ready INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  pool TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS bindings (
  instance_id TEXT NOT NULL,
  id TEXT NOT NULL,
  parameters TEXT NOT NULL,
  credentials TEXT NOT NULL,
  ready INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (instance_id, id)
);
CREATE TABLE IF NOT EXISTS operations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  binding_id TEXT NOT NULL,
  state TEXT NOT NULL,
  description TEXT NOT NULL,
  request TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_by_target ON operations (instance_id, binding_id, id);
CREATE TABLE IF NOT EXISTS journal (
  operation_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  step TEXT NOT NULL,
  at TEXT NOT NULL,
  PRIMARY KEY (operation_id, seq)
);
CREATE TABLE IF NOT EXISTS ports (
  port INTEGER PRIMARY KEY,
  instance_id TEXT NOT NULL,
  purpose TEXT NOT NULL,
  UNIQUE (instance_id, purpose)
);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  instance_id TEXT NOT NULL,
  at TEXT NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_instance ON events (instance_id, id);
CREATE TABLE IF NOT EXISTS health (
  instance_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  reason TEXT NOT NULL,
  nodes TEXT NOT NULL,
  since TEXT NOT NULL
);
)sql";

constexpr const char* kNow = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

Error sqlError(sqlite3* db, std::string_view what) {
  return makeError(ErrorCode::kIo, fmt::format("store: {}: {}", what, sqlite3_errmsg(db)));
}

// One prepared statement; columns and parameters count from 0 and 1 as in SQLite.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      stmt_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool prepared() const { return stmt_ != nullptr; }
  sqlite3_stmt* raw() const { return stmt_; }
  Stmt& bind(int i, const std::string& text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t value) {
    sqlite3_bind_int64(stmt_, i, value);
    return *this;
  }
  Stmt& bindJson(int i, const nlohmann::json& value) { return bind(i, value.dump()); }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  Status run(std::string_view what) {
    if (!prepared())
      return sqlError(db_, what);
    int rc = step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
      return sqlError(db_, what);
    return okStatus();
  }

  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  nlohmann::json json(int col) const {
    auto parsed = nlohmann::json::parse(text(col), nullptr, false);
    return parsed.is_discarded() ? nlohmann::json::object() : parsed;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

constexpr const char* kInstanceColumns =
    "id, service_id, plan_id, parameters, context, organization_guid, space_guid, "
    "maintenance_version, deployment, ready, created_at, updated_at, pool";

InstanceRecord readInstance(const Stmt& s) {
  InstanceRecord r;
  r.id = s.text(0);
  r.service_id = s.text(1);
  r.plan_id = s.text(2);
  r.parameters = s.json(3);
  r.context = s.json(4);
  r.organization_guid = s.text(5);
  r.space_guid = s.text(6);
  r.maintenance_version = s.text(7);
  r.deployment = s.json(8);
  r.ready = s.integer(9) != 0;
  r.created_at = s.text(10);
  r.updated_at = s.text(11);
  r.pool = s.text(12);
  return r;
}

constexpr const char* kBindingColumns =
    "id, instance_id, parameters, credentials, ready, created_at";

BindingRecord readBinding(const Stmt& s) {
  BindingRecord r;
  r.id = s.text(0);
  r.instance_id = s.text(1);
  r.parameters = s.json(2);
  r.credentials = s.json(3);
  r.ready = s.integer(4) != 0;
  r.created_at = s.text(5);
  return r;
}

constexpr const char* kOperationColumns =
    "id, kind, instance_id, binding_id, state, description, request, started_at, finished_at";

std::optional<OpKind> parseOpKind(std::string_view name) {
  for (OpKind k :
       {OpKind::kProvision, OpKind::kUpdate, OpKind::kDeprovision, OpKind::kBind, OpKind::kUnbind})
    if (opKindName(k) == name)
      return k;
  return std::nullopt;
}

std::optional<OpState> parseOpState(std::string_view name) {
  for (OpState s : {OpState::kInProgress, OpState::kSucceeded, OpState::kFailed})
    if (opStateName(s) == name)
      return s;
  return std::nullopt;
}

OperationRecord readOperation(const Stmt& s) {
  OperationRecord r;
  r.id = s.integer(0);
  r.kind = parseOpKind(s.text(1)).value_or(OpKind::kProvision);
  r.instance_id = s.text(2);
  r.binding_id = s.text(3);
  r.state = parseOpState(s.text(4)).value_or(OpState::kFailed);
  r.description = s.text(5);
  r.request = s.json(6);
  r.started_at = s.text(7);
  r.finished_at = s.text(8);
  return r;
}

// Readers kept for reuse; more are opened while more threads read at once.
constexpr size_t kIdleReaders = 8;

sqlite3* openReader(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
          SQLITE_OK ||
      sqlite3_exec(db, "PRAGMA query_only=1", nullptr, nullptr, nullptr) != SQLITE_OK) {
    sqlite3_close_v2(db);
    return nullptr;
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

}  // namespace

std::string_view opKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kProvision:
      return "provision";
    case OpKind::kUpdate:
      return "update";
    case OpKind::kDeprovision:
      return "deprovision";
    case OpKind::kBind:
      return "bind";
    case OpKind::kUnbind:
      return "unbind";
  }
  return "unknown";
}

std::string_view opStateName(OpState state) {
  switch (state) {
    case OpState::kInProgress:
      return "in progress";
    case OpState::kSucceeded:
      return "succeeded";
    case OpState::kFailed:
      return "failed";
  }
  return "failed";
}

std::string OperationRecord::token() const {
  return fmt::format("{}-{}", opKindName(kind), id);
}

Store::Store(sqlite3* db) : db_(db) {}

Store::~Store() {
  for (sqlite3* reader : idle_readers_)
    sqlite3_close_v2(reader);
  sqlite3_close_v2(db_);
}

sqlite3* Store::takeReader() {
  {
    std::lock_guard<std::mutex> lk(readers_mu_);
    if (!idle_readers_.empty()) {
      sqlite3* reader = idle_readers_.back();
      idle_readers_.pop_back();
      return reader;
    }
  }
  return openReader(path_);
}

void Store::giveBack(sqlite3* reader) {
  {
    std::lock_guard<std::mutex> lk(readers_mu_);
    if (idle_readers_.size() < kIdleReaders) {
      idle_readers_.push_back(reader);
      return;
    }
  }
  sqlite3_close_v2(reader);
}

template <typename F>
auto Store::read(F&& body) {
  sqlite3* reader = tx_thread_.load() == std::this_thread::get_id() ? nullptr : takeReader();
  if (reader == nullptr) {  // inside a transaction, or no reading connection could be opened
    std::lock_guard<std::recursive_mutex> lk(mu_);
    return body(db_);
  }
  struct Back {
    Store* store;
    sqlite3* reader;
    ~Back() { store->giveBack(reader); }
  } back{this, reader};
  return body(reader);
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
  // Created with mode 0600 before SQLite opens it: the database holds credentials.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return makeError(ErrorCode::kIo, fmt::format("store: cannot open {}", path));
  ::close(fd);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    Error e = makeError(ErrorCode::kIo, fmt::format("store: cannot open {}: {}", path,
                                                    db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close_v2(db);
    return e;
  }
  std::unique_ptr<Store> store(new Store(db));
  sqlite3_busy_timeout(db, 5000);
  PGF_TRY(store->exec("PRAGMA journal_mode=WAL"), path);
  PGF_TRY(store->exec("PRAGMA synchronous=FULL"), path);
  int64_t found = 0;
  {
    Stmt version(db, "PRAGMA user_version");
    if (!version.prepared() || version.step() != SQLITE_ROW)
      return sqlError(db, "reading the schema version");
    found = version.integer(0);
  }
  if (found > kSchemaVersion)
    return makeError(ErrorCode::kUnsupported,
                     fmt::format("store: {} has schema version {}, newer than this broker's {}",
                                 path, found, kSchemaVersion));
  Status created = store->transaction([&]() -> Status {
    // A store from before the pool keeps its instances: the column is added (tables new in a
    // version are made by kSchema's CREATE ... IF NOT EXISTS).
    if (found >= 1 && found < 3)
      PGF_RETURN_IF_ERROR(
          store->exec("ALTER TABLE instances ADD COLUMN pool TEXT NOT NULL DEFAULT ''"));
    PGF_RETURN_IF_ERROR(store->exec(kSchema));
    return store->exec(fmt::format("PRAGMA user_version={}", kSchemaVersion));
  });
  if (!created.ok())
    return created.error().wrap(path);
  // Reading connections are opened once the file is in WAL mode with its schema.
  store->path_ = path;
  sqlite3* reader = openReader(path);
  if (reader == nullptr)
    return makeError(ErrorCode::kIo, fmt::format("store: cannot open {} for reading", path));
  store->idle_readers_.push_back(reader);
  return store;
}

Status Store::exec(const std::string& sql) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    return makeError(ErrorCode::kIo, "store: " + text);
  }
  return okStatus();
}

Status Store::transaction(const std::function<Status()>& body) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  if (sqlite3_get_autocommit(db_) == 0)
    return body();  // already inside one: part of it
  PGF_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  tx_thread_ = std::this_thread::get_id();
  struct Ended {
    std::atomic<std::thread::id>& owner;
    ~Ended() { owner = std::thread::id(); }
  } ended{tx_thread_};
  Status st = body();
  if (!st.ok()) {
    ignoreError(exec("ROLLBACK"), "the body's error is the one to report");
    return st;
  }
  Status committed = exec("COMMIT");
  if (!committed.ok())
    ignoreError(exec("ROLLBACK"), "the commit's error is the one to report");
  return committed;
}

Status Store::putInstance(const InstanceRecord& r) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  std::string sql = fmt::format(
      "INSERT INTO instances ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, {}, {}, ?11) "
      "ON CONFLICT (id) DO UPDATE SET service_id = ?2, plan_id = ?3, parameters = ?4, "
      "context = ?5, organization_guid = ?6, space_guid = ?7, maintenance_version = ?8, "
      "deployment = ?9, ready = ?10, updated_at = {}, pool = ?11",
      kInstanceColumns, kNow, kNow, kNow);
  Stmt s(db_, sql.c_str());
  if (s.prepared())
    s.bind(1, r.id)
        .bind(2, r.service_id)
        .bind(3, r.plan_id)
        .bindJson(4, r.parameters)
        .bindJson(5, r.context)
        .bind(6, r.organization_guid)
        .bind(7, r.space_guid)
        .bind(8, r.maintenance_version)
        .bindJson(9, r.deployment)
        .bind(10, int64_t{r.ready ? 1 : 0})
        .bind(11, r.pool);
  return s.run("writing instance");
}

Result<std::optional<InstanceRecord>> Store::instance(const std::string& id) {
  return read([&](sqlite3* db) -> Result<std::optional<InstanceRecord>> {
    std::string sql = fmt::format("SELECT {} FROM instances WHERE id = ?1", kInstanceColumns);
    Stmt s(db, sql.c_str());
    if (!s.prepared())
      return sqlError(db, "reading instance");
    s.bind(1, id);
    int rc = s.step();
    if (rc == SQLITE_DONE)
      return std::optional<InstanceRecord>();
    if (rc != SQLITE_ROW)
      return sqlError(db, "reading instance");
    return std::optional<InstanceRecord>(readInstance(s));
  });
}

Result<std::vector<InstanceRecord>> Store::instances() {
  return read([&](sqlite3* db) -> Result<std::vector<InstanceRecord>> {
    std::string sql =
        fmt::format("SELECT {} FROM instances ORDER BY created_at, id", kInstanceColumns);
    Stmt s(db, sql.c_str());
    if (!s.prepared())
      return sqlError(db, "listing instances");
    std::vector<InstanceRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(readInstance(s));
    if (rc != SQLITE_DONE)
      return sqlError(db, "listing instances");
    return out;
  });
}

Status Store::deleteInstance(const std::string& id) {
  return forgetInstance(id, 0);
}

Status Store::forgetInstance(const std::string& id, int64_t keep_op) {
  return transaction([&]() -> Status {
    for (const char* sql :
         {"DELETE FROM journal WHERE operation_id IN "
          "(SELECT id FROM operations WHERE instance_id = ?1 AND id != ?2)",
          "DELETE FROM operations WHERE instance_id = ?1 AND id != ?2",
          "DELETE FROM bindings WHERE instance_id = ?1", "DELETE FROM ports WHERE instance_id = ?1",
          "DELETE FROM events WHERE instance_id = ?1", "DELETE FROM health WHERE instance_id = ?1",
          "DELETE FROM instances WHERE id = ?1"}) {
      Stmt s(db_, sql);
      if (s.prepared() && sqlite3_bind_parameter_count(s.raw()) >= 2)
        s.bind(2, keep_op);
      if (s.prepared())
        s.bind(1, id);
      PGF_RETURN_IF_ERROR(s.run("deleting instance"));
    }
    return okStatus();
  });
}

Status Store::adoptInstance(const std::string& from, const InstanceRecord& to) {
  return transaction([&]() -> Status {
    PGF_RETURN_IF_ERROR(putInstance(to));
    for (const char* sql : {"UPDATE ports SET instance_id = ?2 WHERE instance_id = ?1",
                            "UPDATE events SET instance_id = ?2 WHERE instance_id = ?1",
                            "DELETE FROM health WHERE instance_id = ?2",
                            "UPDATE health SET instance_id = ?2 WHERE instance_id = ?1",
                            "DELETE FROM instances WHERE id = ?1"}) {
      Stmt s(db_, sql);
      if (s.prepared())
        s.bind(1, from).bind(2, to.id);
      PGF_RETURN_IF_ERROR(s.run("moving an instance"));
    }
    return okStatus();
  });
}

Status Store::putBinding(const BindingRecord& r) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  std::string sql = fmt::format(
      "INSERT INTO bindings ({}) VALUES (?1, ?2, ?3, ?4, ?5, {}) "
      "ON CONFLICT (instance_id, id) DO UPDATE SET parameters = ?3, credentials = ?4, ready = ?5",
      kBindingColumns, kNow);
  Stmt s(db_, sql.c_str());
  if (s.prepared())
    s.bind(1, r.id)
        .bind(2, r.instance_id)
        .bindJson(3, r.parameters)
        .bindJson(4, r.credentials)
        .bind(5, int64_t{r.ready ? 1 : 0});
  return s.run("writing binding");
}

Result<std::optional<BindingRecord>> Store::binding(const std::string& instance_id,
                                                    const std::string& binding_id) {
  return read([&](sqlite3* db) -> Result<std::optional<BindingRecord>> {
    std::string sql =
        fmt::format("SELECT {} FROM bindings WHERE instance_id = ?1 AND id = ?2", kBindingColumns);
    Stmt s(db, sql.c_str());
    if (!s.prepared())
      return sqlError(db, "reading binding");
    s.bind(1, instance_id).bind(2, binding_id);
    int rc = s.step();
    if (rc == SQLITE_DONE)
      return std::optional<BindingRecord>();
    if (rc != SQLITE_ROW)
      return sqlError(db, "reading binding");
    return std::optional<BindingRecord>(readBinding(s));
  });
}

Result<std::vector<BindingRecord>> Store::bindings(const std::string& instance_id) {
  return read([&](sqlite3* db) -> Result<std::vector<BindingRecord>> {
    std::string sql = fmt::format(
        "SELECT {} FROM bindings WHERE instance_id = ?1 ORDER BY created_at, id", kBindingColumns);
    Stmt s(db, sql.c_str());
    if (!s.prepared())
      return sqlError(db, "listing bindings");
    s.bind(1, instance_id);
    std::vector<BindingRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(readBinding(s));
    if (rc != SQLITE_DONE)
      return sqlError(db, "listing bindings");
    return out;
  });
}

Status Store::deleteBinding(const std::string& instance_id, const std::string& binding_id) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  Stmt s(db_, "DELETE FROM bindings WHERE instance_id = ?1 AND id = ?2");
  if (s.prepared())
    s.bind(1, instance_id).bind(2, binding_id);
  return s.run("deleting binding");
}

Result<int64_t> Store::beginOperation(const OperationRecord& op) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  std::string sql = fmt::format(
      "INSERT INTO operations (kind, instance_id, binding_id, state, description, request, "
      "started_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {}, '')",
      kNow);
  Stmt s(db_, sql.c_str());
  if (s.prepared())
    s.bind(1, std::string(opKindName(op.kind)))
        .bind(2, op.instance_id)
        .bind(3, op.binding_id)
        .bind(4, std::string(opStateName(OpState::kInProgress)))
        .bind(5, op.description)
        .bindJson(6, op.request);
  PGF_RETURN_IF_ERROR(s.run("starting operation"));
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<int64_t> Store::beginOperation(const OperationRecord& op,
                                      const std::function<Status()>& with) {
  int64_t id = 0;
  Status st = transaction([&]() -> Status {
    PGF_RETURN_IF_ERROR(with());
    auto begun = beginOperation(op);
    if (!begun.ok())
      return begun.error();
    id = *begun;
    return okStatus();
  });
  if (!st.ok())
    return st.error();
  return id;
}

Status Store::journal(int64_t op_id, const std::string& step) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  std::string sql = fmt::format(
      "INSERT INTO journal (operation_id, seq, step, at) VALUES (?1, "
      "(SELECT coalesce(max(seq), 0) + 1 FROM journal WHERE operation_id = ?1), ?2, {})",
      kNow);
  Stmt s(db_, sql.c_str());
  if (s.prepared())
    s.bind(1, op_id).bind(2, step);
  return s.run("journaling a step");
}

Status Store::finishOperation(int64_t op_id, OpState state, const std::string& description) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  std::string sql = fmt::format(
      "UPDATE operations SET state = ?2, description = ?3, finished_at = {} WHERE id = ?1", kNow);
  Stmt s(db_, sql.c_str());
  if (s.prepared())
    s.bind(1, op_id).bind(2, std::string(opStateName(state))).bind(3, description);
  PGF_RETURN_IF_ERROR(s.run("finishing operation"));
  if (sqlite3_changes(db_) != 1)
    return makeError(ErrorCode::kNotFound, fmt::format("store: no operation {}", op_id));
  return okStatus();
}

namespace {

Status readSteps(sqlite3* db, OperationRecord& op) {
  Stmt s(db, "SELECT step FROM journal WHERE operation_id = ?1 ORDER BY seq");
  if (!s.prepared())
    return sqlError(db, "reading the journal");
  s.bind(1, op.id);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    op.steps.push_back(s.text(0));
  if (rc != SQLITE_DONE)
    return sqlError(db, "reading the journal");
  return okStatus();
}

Result<std::vector<OperationRecord>> queryOperations(sqlite3* db, const std::string& where,
                                                     const std::vector<std::string>& args) {
  std::string sql = fmt::format("SELECT {} FROM operations {}", kOperationColumns, where);
  Stmt s(db, sql.c_str());
  if (!s.prepared())
    return sqlError(db, "reading operations");
  for (size_t i = 0; i < args.size(); ++i)
    s.bind(static_cast<int>(i + 1), args[i]);
  std::vector<OperationRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    out.push_back(readOperation(s));
  if (rc != SQLITE_DONE)
    return sqlError(db, "reading operations");
  for (auto& op : out)
    PGF_RETURN_IF_ERROR(readSteps(db, op));
  return out;
}

}  // namespace

Result<std::optional<OperationRecord>> Store::operation(int64_t op_id) {
  return read([&](sqlite3* db) -> Result<std::optional<OperationRecord>> {
    auto ops = queryOperations(db, "WHERE id = ?1", {std::to_string(op_id)});
    if (!ops.ok())
      return ops.error();
    if (ops->empty())
      return std::optional<OperationRecord>();
    return std::optional<OperationRecord>(std::move(ops->front()));
  });
}

Result<std::optional<OperationRecord>> Store::lastOperation(const std::string& instance_id,
                                                            const std::string& binding_id) {
  return read([&](sqlite3* db) -> Result<std::optional<OperationRecord>> {
    auto ops =
        queryOperations(db, "WHERE instance_id = ?1 AND binding_id = ?2 ORDER BY id DESC LIMIT 1",
                        {instance_id, binding_id});
    if (!ops.ok())
      return ops.error();
    if (ops->empty())
      return std::optional<OperationRecord>();
    return std::optional<OperationRecord>(std::move(ops->front()));
  });
}

Result<std::vector<OperationRecord>> Store::unfinishedOperations() {
  return read([&](sqlite3* db) -> Result<std::vector<OperationRecord>> {
    return queryOperations(db, "WHERE state = ?1 ORDER BY id",
                           {std::string(opStateName(OpState::kInProgress))});
  });
}

Result<std::map<std::string, int>> Store::reservePorts(
    const std::string& instance_id, const std::vector<std::string>& purposes, int low, int high,
    const std::function<bool(int port)>& in_use) {
  if (low <= 0 || high > 65535 || low > high)
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("store: port range {}-{} is not valid", low, high));
  std::map<std::string, int> out;
  Status st = transaction([&]() -> Status {
    auto held = ports(instance_id);
    if (!held.ok())
      return held.error();
    std::set<int> taken;
    {
      Stmt s(db_, "SELECT port FROM ports");
      if (!s.prepared())
        return sqlError(db_, "reading ports");
      int rc;
      while ((rc = s.step()) == SQLITE_ROW)
        taken.insert(static_cast<int>(s.integer(0)));
      if (rc != SQLITE_DONE)
        return sqlError(db_, "reading ports");
    }
    int next = low;
    for (const auto& purpose : purposes) {
      if (auto it = held->find(purpose); it != held->end()) {
        out[purpose] = it->second;
        continue;
      }
      while (next <= high && (taken.count(next) || (in_use && in_use(next))))
        ++next;
      if (next > high)
        return makeError(ErrorCode::kUnsupported,
                         fmt::format("no free port left in {}-{} for {}", low, high, purpose));
      Stmt s(db_, "INSERT INTO ports (port, instance_id, purpose) VALUES (?1, ?2, ?3)");
      if (s.prepared())
        s.bind(1, int64_t{next}).bind(2, instance_id).bind(3, purpose);
      PGF_RETURN_IF_ERROR(s.run("reserving a port"));
      taken.insert(next);
      out[purpose] = next;
    }
    return okStatus();
  });
  if (!st.ok())
    return st.error();
  return out;
}

Result<std::map<std::string, int>> Store::ports(const std::string& instance_id) {
  return read([&](sqlite3* db) -> Result<std::map<std::string, int>> {
    Stmt s(db, "SELECT purpose, port FROM ports WHERE instance_id = ?1");
    if (!s.prepared())
      return sqlError(db, "reading ports");
    s.bind(1, instance_id);
    std::map<std::string, int> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out[s.text(0)] = static_cast<int>(s.integer(1));
    if (rc != SQLITE_DONE)
      return sqlError(db, "reading ports");
    return out;
  });
}

Status Store::releasePorts(const std::string& instance_id) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  Stmt s(db_, "DELETE FROM ports WHERE instance_id = ?1");
  if (s.prepared())
    s.bind(1, instance_id);
  return s.run("releasing ports");
}

Status Store::addEvent(const std::string& instance_id, const std::string& kind,
                       const std::string& message) {
  return transaction([&]() -> Status {
    std::string sql = fmt::format(
        "INSERT INTO events (instance_id, at, kind, message) VALUES (?1, {}, ?2, ?3)", kNow);
    Stmt insert(db_, sql.c_str());
    if (insert.prepared())
      insert.bind(1, instance_id).bind(2, kind).bind(3, message);
    PGF_RETURN_IF_ERROR(insert.run("writing event"));
    Stmt trim(db_,
              "DELETE FROM events WHERE instance_id = ?1 AND id <= "
              "(SELECT id FROM events WHERE instance_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)");
    if (trim.prepared())
      trim.bind(1, instance_id).bind(2, int64_t{kEventsKept});
    return trim.run("trimming events");
  });
}

Result<std::vector<EventRecord>> Store::events(const std::string& instance_id, int limit) {
  return read([&](sqlite3* db) -> Result<std::vector<EventRecord>> {
    Stmt s(db,
           "SELECT id, instance_id, at, kind, message FROM (SELECT * FROM events WHERE "
           "instance_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id");
    if (!s.prepared())
      return sqlError(db, "reading events");
    s.bind(1, instance_id).bind(2, int64_t{limit});
    std::vector<EventRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4)});
    if (rc != SQLITE_DONE)
      return sqlError(db, "reading events");
    return out;
  });
}

Status Store::putHealth(const HealthRecord& h) {
  std::lock_guard<std::recursive_mutex> lk(mu_);
  std::string sql = fmt::format(
      "INSERT INTO health (instance_id, state, reason, nodes, since) VALUES (?1, ?2, ?3, ?4, {}) "
      "ON CONFLICT (instance_id) DO UPDATE SET since = CASE WHEN state = ?2 THEN since ELSE {} "
      "END, state = ?2, reason = ?3, nodes = ?4",
      kNow, kNow);
  Stmt s(db_, sql.c_str());
  if (s.prepared())
    s.bind(1, h.instance_id).bind(2, h.state).bind(3, h.reason).bindJson(4, h.nodes);
  return s.run("writing health");
}

namespace {

Result<std::vector<HealthRecord>> queryHealth(sqlite3* db, const char* where,
                                              const std::string& id) {
  std::string sql =
      fmt::format("SELECT instance_id, state, reason, nodes, since FROM health {}", where);
  Stmt s(db, sql.c_str());
  if (!s.prepared())
    return sqlError(db, "reading health");
  if (!id.empty())
    s.bind(1, id);
  std::vector<HealthRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    out.push_back({s.text(0), s.text(1), s.text(2), s.json(3), s.text(4)});
  if (rc != SQLITE_DONE)
    return sqlError(db, "reading health");
  return out;
}

}  // namespace

Result<std::optional<HealthRecord>> Store::health(const std::string& instance_id) {
  return read([&](sqlite3* db) -> Result<std::optional<HealthRecord>> {
    auto all = queryHealth(db, "WHERE instance_id = ?1", instance_id);
    if (!all.ok())
      return all.error();
    if (all->empty())
      return std::optional<HealthRecord>();
    return std::optional<HealthRecord>(std::move(all->front()));
  });
}

Result<std::vector<HealthRecord>> Store::healthAll() {
  return read([&](sqlite3* db) { return queryHealth(db, "ORDER BY instance_id", ""); });
}

}  // namespace pgf
