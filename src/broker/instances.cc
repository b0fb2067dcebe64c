#include "broker/instances.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker/json_schema.h"
#include "broker/osb_api.h"
#include "broker/plan_change.h"
#include "broker/postgres_spi.h"
#include "common/http_client.h"
#include "deploy/template.h"
#include "postgres/data_dir.h"

namespace pgf {
namespace {

using nlohmann::json;

constexpr const char* kDefaultDatabase = "app";
constexpr const char* kOwnerRole = "pgfleet_owner";

HttpReply reply(int status, const json& body) {
  return HttpReply{status, "application/json", body.dump(), {}};
}

// A testing aid (docs/broker.md): when PGFLEET_BROKER_KILL_AT names a step ("provision
// begun", "nodes started", ...), the broker kills itself with SIGKILL right after committing it,
// so that tests can stop it at every step of an operation and check what the next broker does.
void killPoint(std::string_view step) {
  static const char* const kill_at = std::getenv("PGFLEET_BROKER_KILL_AT");
  if (kill_at != nullptr && step == kill_at) {
    spdlog::warn("PGFLEET_BROKER_KILL_AT: killing the broker after \"{}\"", step);
    spdlog::default_logger()->flush();
    ::raise(SIGKILL);
  }
}

HttpReply storeFailure(const Error& e) {
  spdlog::error("store: {}", e.message);
  return osbError(500, "", "the broker could not read or write its store; nothing was changed");
}

// An instance's (or a request's) `settings` parameter; an empty object when it has none.
json settingsOf(const json& parameters) {
  if (!parameters.is_object())
    return json::object();
  auto it = parameters.find("settings");
  return it != parameters.end() && it->is_object() ? *it : json::object();
}

bool acceptsIncomplete(const HttpRequest& req) {
  auto it = req.query.find("accepts_incomplete");
  return it != req.query.end() && it->second == "true";
}

std::string queryValue(const HttpRequest& req, const std::string& key) {
  auto it = req.query.find(key);
  return it == req.query.end() ? "" : it->second;
}

// What an operation keeps of the request that started it: who asked, when the platform says
// (X-Broker-API-Originating-Identity).
json requestRecord(const HttpRequest& req) {
  json record = json::object();
  if (json by = originatingIdentity(req); !by.is_null())
    record["by"] = std::move(by);
  return record;
}

// The request body as a JSON object; nullopt (and a 400 in *error) when it is not one.
std::optional<json> bodyObject(const HttpRequest& req, HttpReply* error) {
  auto body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    *error = osbError(400, "", "the request body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

std::string stringField(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : "";
}

// Whether nothing listens on 127.0.0.1:port (a bind that succeeds).
bool portFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

InstanceAccess accessOf(const InstanceRecord& r) {
  InstanceAccess a;
  const json& d = r.deployment;
  a.read_write_port = d.value("read_write_port", 0);
  a.read_only_port = d.value("read_only_port", 0);
  a.superuser_password = d.value("superuser_password", "");
  a.database = d.value("database", kDefaultDatabase);
  a.owner_role = d.value("owner_role", kOwnerRole);
  return a;
}

// While an operation runs, its description names the last step done ("provisioning: nodes
// started"), so that a client polling last_operation can show progress.
json operationBody(const OperationRecord& op) {
  json body = {{"state", std::string(opStateName(op.state))}};
  std::string description = op.description;
  if (op.state == OpState::kInProgress && !op.steps.empty())
    description += (description.empty() ? "" : ": ") + op.steps.back();
  if (!description.empty())
    body["description"] = description;
  // A failed plan change leaves the instance running (on its former plan, or part-way to the
  // new one), and asking again finishes it.
  if (op.kind == OpKind::kUpdate && op.state == OpState::kFailed) {
    body["instance_usable"] = true;
    body["update_repeatable"] = true;
  }
  return body;
}

// last_operation's answer: while the operation runs, Retry-After tells the platform when to
// poll again (Cloud Foundry's own default is a minute).
HttpReply operationReply(const OperationRecord& op) {
  HttpReply r = reply(200, operationBody(op));
  if (op.state == OpState::kInProgress)
    r.headers["Retry-After"] = "1";
  return r;
}

// The attributes a repeated PUT must match to count as the same request.
bool sameProvision(const InstanceRecord& r, const json& body) {
  json params = body.contains("parameters") ? body["parameters"] : json::object();
  return r.service_id == stringField(body, "service_id") &&
         r.plan_id == stringField(body, "plan_id") && r.parameters == params;
}

// What an instance of `plan` reserves a port for: its endpoints and each node's PostgreSQL and
// REST API.
std::vector<std::string> portPurposes(const Plan& plan) {
  std::vector<std::string> purposes = {"rw"};
  if (plan.nodes > 1)
    purposes.push_back("ro");
  for (int i = 0; i < plan.nodes; ++i) {
    purposes.push_back(fmt::format("pg{}", i));
    purposes.push_back(fmt::format("api{}", i));
  }
  return purposes;
}

// One request to a node's agent (its Patroni-compatible REST API) on 127.0.0.1.
Result<HttpResponse> agentCall(int api_port, std::string_view method, std::string_view path,
                               const json& body, Millis timeout) {
  HttpConnection conn("127.0.0.1", api_port);
  HttpHeaders headers;
  if (!body.is_null())
    headers.emplace_back("Content-Type", "application/json");
  return conn.request(method, path, headers, body.is_null() ? "" : body.dump(),
                      std::chrono::steady_clock::now() + timeout);
}

// A node as its agent reports it (GET /patroni); empty role when it does not answer.
struct NodeView {
  std::string role;  // "primary", "replica" or ""
  bool running = false;
  bool streaming = false;
  bool pending_restart = false;
};

NodeView nodeView(int api_port) {
  NodeView v;
  auto res = agentCall(api_port, "GET", "/patroni", nullptr, Millis(2000));
  if (!res.ok() || (res->status != 200 && res->status != 503))
    return v;
  auto doc = json::parse(res->body, nullptr, false);
  if (!doc.is_object())
    return v;
  const std::string role = doc.value("role", "");
  v.role = role == "master" || role == "primary" ? "primary" : role == "replica" ? "replica" : "";
  v.running = doc.value("state", "") == "running";
  v.streaming = doc.value("replication_state", "") == "streaming";
  v.pending_restart = doc.value("pending_restart", false);
  return v;
}

// Running as the primary, or as a replica that streams.
bool serving(const NodeView& v) {
  return v.running && (v.role == "primary" || (v.role == "replica" && v.streaming));
}

}  // namespace

InstanceService::InstanceService(InstanceServiceOptions options, Store& store,
                                 LocalBackend& backend)
    : options_(std::move(options)), store_(store), backend_(backend) {}

InstanceService::~InstanceService() {
  stopping_ = true;
  std::map<std::string, Worker> workers;
  {
    std::lock_guard<std::mutex> lk(mu_);
    workers.swap(workers_);
  }
  for (auto& [id, w] : workers) {
    *w.cancel = true;
    if (w.thread.joinable())
      w.thread.join();
  }
}

Result<DeploymentManifest> InstanceService::manifestOf(const InstanceRecord& r) const {
  const Plan* plan = options_.catalog.planById(r.plan_id);
  if (plan == nullptr)
    return makeError(ErrorCode::kConfig,
                     fmt::format("plan {} is no longer in the catalog", r.plan_id));
  auto text = readFile(options_.templates_dir + "/" + plan->template_file);
  if (!text.ok())
    return text.error();
  const json& d = r.deployment;
  const std::string name = d.value("name", "");
  json params = json::array();
  for (const auto& [k, v] : planParameters(*plan, settingsOf(r.parameters)))
    params.push_back({{"name", k}, {"value", v}});
  json nodes = json::array();
  const json ports = d.value("ports", json::object());
  for (int i = 0; i < plan->nodes; ++i) {
    const std::string node = fmt::format("node{}", i);
    nodes.push_back({{"name", node},
                     {"pg_port", ports.value(fmt::format("pg{}", i), 0)},
                     {"api_port", ports.value(fmt::format("api{}", i), 0)},
                     {"dir", backend_.nodeDir(name, node)}});
  }
  std::string hosts;
  for (const auto& h : options_.etcd_hosts)
    hosts += (hosts.empty() ? "" : ",") + h;
  json ctx = {{"instance", name},
              {"scope", name},
              {"etcd_hosts", hosts},
              {"bin_dir", options_.pg_bin_dir},
              {"ttl", plan->ttl},
              {"loop_wait", plan->loop_wait},
              {"retry_timeout", plan->retry_timeout},
              {"synchronous_mode", plan->synchronous_mode ? "true" : "false"},
              {"superuser_password", d.value("superuser_password", "")},
              {"replication_password", d.value("replication_password", "")},
              {"rewind_password", d.value("rewind_password", "")},
              {"parameters", params},
              {"nodes", nodes},
              {"read_write_port", ports.value("rw", 0)},
              {"read_only_port", plan->nodes > 1 ? json(ports.value("ro", 0)) : json(nullptr)}};
  auto rendered = renderTemplate(*text, ctx);
  if (!rendered.ok())
    return rendered.error();
  return parseManifest(*rendered);
}

bool InstanceService::maintenanceConflict(const json& body, const std::string& plan_id,
                                          HttpReply* out) const {
  auto mi = body.find("maintenance_info");
  if (mi == body.end() || mi->is_null())
    return false;
  const Plan* plan = options_.catalog.planById(plan_id);
  const std::string version = mi->is_object() ? stringField(*mi, "version") : "";
  if (plan == nullptr || version == plan->maintenance_version)
    return false;
  *out = osbError(422, "MaintenanceInfoConflict",
                  fmt::format("maintenance_info.version {} is not the plan's ({})",
                              jsonQuoted(version), plan->maintenance_version));
  return true;
}

// ---- provision ----

HttpReply InstanceService::provision(const std::string& id, const HttpRequest& req) {
  HttpReply error;
  auto body = bodyObject(req, &error);
  if (!body)
    return error;
  const std::string service_id = stringField(*body, "service_id");
  const std::string plan_id = stringField(*body, "plan_id");
  if (service_id.empty() || plan_id.empty())
    return osbError(400, "", "service_id and plan_id are required strings");
  if (service_id != options_.catalog.service_id)
    return osbError(400, "", fmt::format("unknown service_id {}", jsonQuoted(service_id)));
  const Plan* plan = options_.catalog.planById(plan_id);
  if (plan == nullptr)
    return osbError(400, "", fmt::format("unknown plan_id {}", jsonQuoted(plan_id)));
  if (!acceptsIncomplete(req))
    return osbError(422, "AsyncRequired",
                    "provisioning takes a while: this broker answers asynchronously "
                    "(accepts_incomplete=true)");
  if (HttpReply conflict; maintenanceConflict(*body, plan_id, &conflict))
    return conflict;
  json params = body->contains("parameters") ? (*body)["parameters"] : json::object();
  if (!params.is_object())
    return osbError(400, "", "parameters must be a JSON object");
  if (!plan->schema.is_null()) {
    if (std::string v = schemaViolation(plan->schema, params); !v.empty())
      return osbError(400, "", v);
  } else if (!params.empty()) {
    return osbError(400, "", fmt::format("plan {} takes no parameters", plan->name));
  }
  if (std::string v = settingsViolation(params.value("settings", json())); !v.empty())
    return osbError(400, "", v);
  // A pooled instance runs the plan's settings: one with settings of its own is built for it.
  const bool own_settings = !settingsOf(params).empty();

  // The decision and its commit (an fsync) run on a worker thread, not on the thread that reads
  // every request: a poll never waits behind a provision.
  HttpReply out;
  out.deferred = [this, id, doc = std::move(*body), params, plan, service_id, plan_id, own_settings,
                  request = requestRecord(req)]() -> HttpReply {
    // The health of a pooled instance or two is checked before the lock (a check takes up to
    // seconds per node); the claim itself is decided under it.
    std::vector<std::string> healthy;
    if (plan->provisioning.pooled() && pool_ != nullptr && !own_settings)
      healthy = healthyPooled(plan_id, 2);
    std::unique_lock<std::mutex> lk(mu_);
    auto existing = store_.instance(id);
    if (!existing.ok())
      return storeFailure(existing.error());
    if (existing->has_value() && !(*existing)->pool.empty())
      return osbError(409, "", "this id is taken by one of the broker's pooled instances");
    if (existing->has_value()) {
      const InstanceRecord& r = **existing;
      if (!sameProvision(r, doc))
        return osbError(409, "", "an instance with this id exists with other attributes");
      auto last = store_.lastOperation(id);
      if (!last.ok())
        return storeFailure(last.error());
      if (r.ready)
        return reply(200, json::object());
      if (last->has_value() && (*last)->kind == OpKind::kProvision &&
          (*last)->state == OpState::kInProgress)
        return reply(202, {{"operation", (*last)->token()}});
      return osbError(409, "", "an instance with this id exists and is not being provisioned");
    }

    InstanceRecord r;
    r.id = id;
    r.service_id = service_id;
    r.plan_id = plan_id;
    r.parameters = params;
    if (auto ctx = doc.find("context"); ctx != doc.end() && ctx->is_object())
      r.context = *ctx;
    r.organization_guid = stringField(doc, "organization_guid");
    r.space_guid = stringField(doc, "space_guid");
    r.maintenance_version = plan->maintenance_version;
    // What the tenant asked for; made at the end of the provision (or of the claim).
    r.deployment = {{"database", params.value("database", kDefaultDatabase)},
                    {"owner_role", kOwnerRole},
                    {"extensions", params.value("extensions", json::array())}};
    OperationRecord op;
    op.kind = OpKind::kProvision;
    op.instance_id = id;
    op.description = "provisioning";
    op.request = request;

    if (plan->provisioning.pooled() && pool_ != nullptr && !own_settings) {
      // Taken from the pool: the claim and the operation are one transaction.
      auto claimed = claimPooled(r, healthy, [&]() -> Status {
        auto begun = store_.beginOperation(op);
        if (!begun.ok())
          return begun.error();
        op.id = *begun;
        return store_.journal(op.id, "taken from the pool");
      });
      if (!claimed.ok())
        return storeFailure(claimed.error());
      if (*claimed) {
        pool_->noteClaim(plan_id);
        ++claims_finishing_;
        spdlog::info("provisioning instance {} ({}, plan {}) from the pool{}", jsonQuoted(id),
                     r.deployment.value("name", ""), plan->name,
                     requestedBy(op.request.value("by", json())));
        killPoint("taken from the pool");
        fresh_claims_.insert(op.id);
        std::shared_future<void> done = startWorker(id, op.id, OpKind::kProvision);
        // What is left (the database, its owner and extensions, a write) takes a fraction of a
        // second: answered once it is done, the first poll says `succeeded`.
        lk.unlock();
        done.wait_for(options_.claim_wait);
        // The refill starts now rather than beside the claim it replaces.
        --claims_finishing_;
        pool_->wake();
        return reply(202, {{"operation", op.token()}});
      }
      pool_->noteMiss(plan_id);
      pool_->wake();
      if (plan->provisioning.strategy == ProvisioningStrategy::kPool) {
        // Only the pool makes this plan's instances: the worker waits for its next one.
        auto op_id = store_.beginOperation(op, [&] { return store_.putInstance(r); });
        if (!op_id.ok())
          return storeFailure(op_id.error());
        op.id = *op_id;
        spdlog::info("provisioning instance {} (plan {}): waiting for the pool{}", jsonQuoted(id),
                     plan->name, requestedBy(op.request.value("by", json())));
        killPoint("provision begun");
        startWorker(id, op.id, OpKind::kProvision);
        return reply(202, {{"operation", op.token()}});
      }
    }

    // Built on demand. Everything that must never change once made is decided now and committed
    // with the instance.
    r.deployment["name"] = randomName("pgf-", 10);
    r.deployment["superuser_password"] = randomSecret();
    r.deployment["replication_password"] = randomSecret();
    r.deployment["rewind_password"] = randomSecret();
    auto op_id = store_.beginOperation(op, [&] { return store_.putInstance(r); });
    if (!op_id.ok())
      return storeFailure(op_id.error());
    op.id = *op_id;
    spdlog::info("provisioning instance {} ({}, plan {}){}", jsonQuoted(id),
                 r.deployment.value("name", ""), plan->name,
                 requestedBy(op.request.value("by", json())));
    killPoint("provision begun");
    startWorker(id, op.id, OpKind::kProvision);
    return reply(202, {{"operation", op.token()}});
  };
  return out;
}

Status InstanceService::journal(int64_t op_id, const std::string& step) {
  PGF_RETURN_IF_ERROR(store_.journal(op_id, step));
  killPoint(step);
  return okStatus();
}

std::shared_future<void> InstanceService::startWorker(const std::string& instance_id, int64_t op_id,
                                                      OpKind kind) {
  // Called with mu_ held. The instance's previous worker (a provision a deprovision halts, or one
  // that has finished) is cancelled here and joined by the new one before it starts, so that a
  // request never waits for it and the two never overlap.
  std::thread previous;
  if (auto old = workers_.find(instance_id); old != workers_.end()) {
    *old->second.cancel = true;
    previous = std::move(old->second.thread);
    workers_.erase(old);
  }
  Worker w;
  w.cancel = std::make_shared<std::atomic<bool>>(false);
  auto cancel = w.cancel;
  auto finished = std::make_shared<std::promise<void>>();
  std::shared_future<void> done = finished->get_future().share();
  w.thread = std::thread(
      [this, instance_id, op_id, kind, cancel, finished, previous = std::move(previous)]() mutable {
        if (previous.joinable())
          previous.join();
        if (supervisor_ != nullptr)
          supervisor_->hold(instance_id);
        if (kind == OpKind::kProvision)
          runProvision(instance_id, op_id, *cancel);
        else if (kind == OpKind::kUpdate)
          runUpdate(instance_id, op_id, *cancel);
        else
          runDeprovision(instance_id, op_id);
        if (supervisor_ != nullptr)
          supervisor_->release(instance_id);
        finished->set_value();
      });
  workers_[instance_id] = std::move(w);
  return done;
}

Status InstanceService::startNodes(InstanceRecord& r, const Plan& plan, int64_t op_id,
                                   const std::atomic<bool>& cancel) {
  auto step = [&](const std::string& done) {
    return op_id > 0 ? journal(op_id, done) : okStatus();
  };
  const std::string name = r.deployment.value("name", "");
  // Ports: kept in the store before anything listens on them.
  auto ports = store_.reservePorts(r.id, portPurposes(plan), options_.port_low, options_.port_high,
                                   [](int port) { return !portFree(port); });
  if (!ports.ok())
    return ports.error();
  r.deployment["ports"] = *ports;
  r.deployment["read_write_port"] = ports->at("rw");
  r.deployment["read_only_port"] = plan.nodes > 1 ? ports->at("ro") : 0;
  PGF_TRY(store_.putInstance(r), "recording the ports");
  PGF_TRY(step("ports reserved"), "journal");
  if (cancel)
    return makeError(ErrorCode::kInternal, "halted");

  auto manifest = manifestOf(r);
  if (!manifest.ok())
    return manifest.error().wrap("rendering the deployment manifest");
  PGF_TRY(backend_.deploy(name, *manifest), "starting the nodes");
  PGF_TRY(step("nodes started"), "journal");

  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  while (!backend_.health(name, *manifest).healthy()) {
    if (cancel)
      return makeError(ErrorCode::kInternal, "halted");
    if (std::chrono::steady_clock::now() >= deadline)
      return makeError(ErrorCode::kTimeout, fmt::format("the nodes were not healthy within {} s",
                                                        options_.ready_timeout.count() / 1000));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return step("nodes healthy");
}

Status InstanceService::provisionSteps(const std::string& id, int64_t op_id,
                                       const std::atomic<bool>& cancel) {
  auto loaded = store_.instance(id);
  if (!loaded.ok())
    return loaded.error();
  if (!loaded->has_value())
    return makeError(ErrorCode::kNotFound, "the instance is gone");
  InstanceRecord r = **loaded;
  const Plan* plan = options_.catalog.planById(r.plan_id);
  if (plan == nullptr)
    return makeError(ErrorCode::kConfig, "the plan is no longer in the catalog");
  // A `pool` plan's instance that found the pool empty has no nodes of its own yet.
  if (!r.deployment.contains("name"))
    PGF_RETURN_IF_ERROR(waitForPool(r, op_id, cancel));
  // Nodes just claimed were found healthy a moment ago; a provision resumed by a new broker
  // makes sure of them again.
  bool fresh_claim = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    fresh_claim = fresh_claims_.erase(op_id) > 0;
  }
  if (!fresh_claim)
    PGF_RETURN_IF_ERROR(startNodes(r, *plan, op_id, cancel));

  InstanceAccess access = accessOf(r);
  std::vector<std::string> extensions;
  for (const auto& e : r.deployment.value("extensions", json::array()))
    if (e.is_string())
      extensions.push_back(e.get<std::string>());
  // HAProxy switches within a second of the health checks: retry the first statements briefly.
  Status prepared;
  for (int attempt = 0; attempt < 20 && !cancel; ++attempt) {
    prepared = prepareDatabase(access, extensions, options_.sql_timeout);
    if (prepared.ok())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (!prepared.ok())
    return prepared.error().wrap("creating the database");
  PGF_TRY(journal(op_id, "database created"), "journal");
  PGF_TRY(checkReadiness(access, options_.sql_timeout), "readiness");
  PGF_TRY(journal(op_id, "write through the endpoint succeeded"), "journal");
  r.ready = true;
  return store_.transaction([&]() -> Status {
    PGF_RETURN_IF_ERROR(store_.putInstance(r));
    return store_.finishOperation(op_id, OpState::kSucceeded, "the instance is ready");
  });
}

void InstanceService::runProvision(const std::string& id, int64_t op_id,
                                   const std::atomic<bool>& cancel) {
  endWork(id, op_id, provisionSteps(id, op_id, cancel), cancel, "provisioning", "is ready");
}

void InstanceService::endWork(const std::string& id, int64_t op_id, const Status& st,
                              const std::atomic<bool>& cancel, std::string_view doing,
                              std::string_view done) {
  if (st.ok()) {
    spdlog::info("instance {} {}", jsonQuoted(id), done);
    return;
  }
  // Halted by a deprovision (which records it), or by the broker stopping (the next one resumes
  // the operation).
  if (cancel || stopping_)
    return;
  spdlog::error("{} instance {} failed: {}", doing, jsonQuoted(id), st.error().message);
  ignoreError(store_.finishOperation(op_id, OpState::kFailed,
                                     fmt::format("{} failed: {}", doing, st.error().message)),
              "a store failure is logged by the store's caller at the next request");
}

// ---- the pool ----

Result<std::optional<InstanceRecord>> InstanceService::tenantInstance(const std::string& id) {
  auto r = store_.instance(id);
  if (r.ok() && r->has_value() && !(*r)->pool.empty())
    return std::optional<InstanceRecord>();
  return r;
}

bool InstanceService::pooledHealthy(const InstanceRecord& candidate) {
  // Its health now: the supervisor's last look may be seconds old.
  auto manifest = manifestOf(candidate);
  if (manifest.ok() && backend_.health(candidate.deployment.value("name", ""), *manifest).healthy())
    return true;
  spdlog::warn("pooled instance {} is not healthy: not handed out", jsonQuoted(candidate.id));
  return false;
}

std::vector<std::string> InstanceService::healthyPooled(const std::string& plan_id, size_t n) {
  std::vector<std::string> out;
  auto all = store_.instances();
  if (!all.ok())
    return out;
  for (const auto& candidate : *all) {
    if (out.size() >= n)
      break;
    if (candidate.pool == plan_id && candidate.ready && pooledHealthy(candidate))
      out.push_back(candidate.id);
  }
  return out;
}

Result<bool> InstanceService::claimPooled(InstanceRecord& r,
                                          const std::vector<std::string>& healthy,
                                          const std::function<Status()>& with) {
  auto all = store_.instances();
  if (!all.ok())
    return all.error();
  // Those found healthy a moment ago first; any other is checked now.
  auto checked = [&](const InstanceRecord& c) {
    return std::find(healthy.begin(), healthy.end(), c.id) != healthy.end();
  };
  std::stable_partition(all->begin(), all->end(), checked);
  for (const auto& candidate : *all) {
    if (candidate.pool != r.plan_id || !candidate.ready)
      continue;
    if (!checked(candidate) && !pooledHealthy(candidate))
      continue;
    InstanceRecord claimed = r;
    bool taken = false;
    Status st = store_.transaction([&]() -> Status {
      auto now = store_.instance(candidate.id);
      if (!now.ok())
        return now.error();
      if (!now->has_value() || (*now)->pool != r.plan_id || !(*now)->ready)
        return okStatus();  // claimed, or given back, since the list was read
      claimed.deployment = (*now)->deployment;
      for (const char* key : {"database", "owner_role", "extensions"})
        if (r.deployment.contains(key))
          claimed.deployment[key] = r.deployment[key];
      claimed.pool.clear();
      claimed.ready = false;
      PGF_RETURN_IF_ERROR(store_.adoptInstance(candidate.id, claimed));
      PGF_RETURN_IF_ERROR(store_.addEvent(
          r.id, "claimed",
          fmt::format("taken from the pool (it was pooled instance {})", candidate.id)));
      if (with)
        PGF_RETURN_IF_ERROR(with());
      taken = true;
      return okStatus();
    });
    if (!st.ok())
      return st.error();
    if (taken) {
      r = std::move(claimed);
      return true;
    }
  }
  return false;
}

Status InstanceService::waitForPool(InstanceRecord& r, int64_t op_id,
                                    const std::atomic<bool>& cancel) {
  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  while (!cancel) {
    auto claimed = claimPooled(
        r, {}, [&]() -> Status { return store_.journal(op_id, "taken from the pool"); });
    if (!claimed.ok())
      return claimed.error();
    if (*claimed) {
      if (pool_ != nullptr) {
        pool_->noteClaim(r.plan_id);
        pool_->wake();
      }
      spdlog::info("instance {} took pooled nodes {}", jsonQuoted(r.id),
                   r.deployment.value("name", ""));
      killPoint("taken from the pool");
      return okStatus();
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return makeError(ErrorCode::kTimeout, fmt::format("no pooled instance was ready within {} s",
                                                        options_.ready_timeout.count() / 1000));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return makeError(ErrorCode::kInternal, "halted");
}

Result<std::string> InstanceService::createPooled(const Plan& plan) {
  InstanceRecord r;
  r.id = randomName("pool-", 16);
  r.service_id = options_.catalog.service_id;
  r.plan_id = plan.id;
  r.pool = plan.id;
  r.maintenance_version = plan.maintenance_version;
  r.deployment = {{"name", randomName("pgf-", 10)},
                  {"superuser_password", randomSecret()},
                  {"replication_password", randomSecret()},
                  {"rewind_password", randomSecret()}};
  Status made = store_.transaction([&]() -> Status {
    PGF_RETURN_IF_ERROR(store_.putInstance(r));
    return store_.addEvent(r.id, "pooled", fmt::format("made for the pool of plan {}", plan.name));
  });
  if (!made.ok())
    return made.error();
  return r.id;
}

Status InstanceService::buildPooled(const std::string& id, const std::atomic<bool>& cancel) {
  auto loaded = store_.instance(id);
  if (!loaded.ok())
    return loaded.error();
  if (!loaded->has_value() || (*loaded)->pool.empty())
    return okStatus();  // claimed or gone
  InstanceRecord r = **loaded;
  const Plan* plan = options_.catalog.planById(r.pool);
  if (plan == nullptr)
    return makeError(ErrorCode::kConfig, "the plan is no longer in the catalog");
  PGF_RETURN_IF_ERROR(startNodes(r, *plan, 0, cancel));
  // A committed write through the endpoint; the tenant's database comes with the claim.
  InstanceAccess access = accessOf(r);
  access.database = "postgres";
  Status ready;
  for (int attempt = 0; attempt < 20 && !cancel; ++attempt) {
    ready = prepareDatabaseAhead(access, options_.sql_timeout);
    if (ready.ok())
      ready = checkReadiness(access, options_.sql_timeout);
    if (ready.ok())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (cancel)
    return makeError(ErrorCode::kInternal, "halted");
  if (!ready.ok())
    return ready.error().wrap("readiness");
  r.ready = true;
  return store_.transaction([&]() -> Status {
    PGF_RETURN_IF_ERROR(store_.putInstance(r));
    return store_.addEvent(r.id, "pooled", "built, healthy and ready to be claimed");
  });
}

Status InstanceService::destroyPooled(const std::string& id) {
  std::optional<InstanceRecord> r;
  // Taken out of the pool first (a claim never gets it afterwards); a broker stopped before it
  // is gone finds it marked and finishes.
  Status marked = store_.transaction([&]() -> Status {
    auto loaded = store_.instance(id);
    if (!loaded.ok())
      return loaded.error();
    if (!loaded->has_value() || (*loaded)->pool.empty())
      return okStatus();
    r = **loaded;
    r->ready = false;
    r->deployment["retiring"] = true;
    return store_.putInstance(*r);
  });
  if (!marked.ok())
    return marked;
  if (!r)
    return okStatus();
  if (supervisor_ != nullptr)
    supervisor_->hold(id);
  const std::string name = r->deployment.value("name", "");
  Status st = name.empty() ? okStatus() : backend_.destroy(name);
  if (st.ok())
    st = store_.deleteInstance(id);
  if (supervisor_ != nullptr)
    supervisor_->release(id);
  return st;
}

// ---- deprovision ----

HttpReply InstanceService::deprovision(const std::string& id, const HttpRequest& req) {
  if (queryValue(req, "service_id").empty() || queryValue(req, "plan_id").empty())
    return osbError(400, "", "service_id and plan_id are required query parameters");
  // On a worker thread, like a provision.
  HttpReply out;
  out.deferred = [this, id, accepts_incomplete = acceptsIncomplete(req),
                  request = requestRecord(req)]() -> HttpReply {
    std::lock_guard<std::mutex> lk(mu_);
    auto existing = tenantInstance(id);
    if (!existing.ok())
      return storeFailure(existing.error());
    if (!existing->has_value())
      return reply(410, json::object());
    if (!accepts_incomplete)
      return osbError(422, "AsyncRequired",
                      "deprovisioning takes a while: this broker answers asynchronously "
                      "(accepts_incomplete=true)");
    if (busy_.count(id))
      return osbError(422, "ConcurrencyError", "a bind or unbind on this instance is running");
    auto last = store_.lastOperation(id);
    if (!last.ok())
      return storeFailure(last.error());
    const bool running = last->has_value() && (*last)->state == OpState::kInProgress;
    if (running && (*last)->kind == OpKind::kDeprovision)
      return reply(202, {{"operation", (*last)->token()}});
    if (running && (*last)->kind == OpKind::kUpdate)
      return osbError(422, "ConcurrencyError", "the instance is being updated");
    OperationRecord op;
    op.kind = OpKind::kDeprovision;
    op.instance_id = id;
    op.description = "deprovisioning";
    op.request = request;
    // Deprovision during provision: the provision is halted (in the same transaction, so that a
    // broker killed in between never resumes it), then everything it made goes. Its worker is
    // cancelled by startWorker().
    auto op_id = store_.beginOperation(op, [&]() -> Status {
      if (running && (*last)->kind == OpKind::kProvision)
        return store_.finishOperation((*last)->id, OpState::kFailed,
                                      "halted: the instance is being deprovisioned");
      return okStatus();
    });
    if (!op_id.ok())
      return storeFailure(op_id.error());
    op.id = *op_id;
    spdlog::info("deprovisioning instance {}{}", jsonQuoted(id),
                 requestedBy(op.request.value("by", json())));
    killPoint("deprovision begun");
    startWorker(id, *op_id, OpKind::kDeprovision);
    return reply(202, {{"operation", op.token()}});
  };
  return out;
}

void InstanceService::runDeprovision(const std::string& id, int64_t op_id) {
  auto loaded = store_.instance(id);
  Status st = loaded.ok() ? okStatus() : Status(loaded.error());
  if (st.ok() && loaded->has_value()) {
    const std::string name = (*loaded)->deployment.value("name", "");
    if (!name.empty())
      st = backend_.destroy(name);
    if (st.ok())
      st = journal(op_id, "nodes removed");
  }
  if (st.ok())
    st = store_.forgetInstance(id, op_id);
  if (st.ok()) {
    spdlog::info("instance {} deprovisioned", jsonQuoted(id));
    ignoreError(store_.finishOperation(op_id, OpState::kSucceeded, "deprovisioned"),
                "the instance is gone either way; last_operation answers 410");
    return;
  }
  if (stopping_)
    return;
  spdlog::error("deprovisioning instance {} failed: {}", jsonQuoted(id), st.error().message);
  ignoreError(store_.finishOperation(op_id, OpState::kFailed,
                                     "deprovisioning failed: " + st.error().message),
              "logged above");
}

// ---- last_operation, fetch ----
//
// These only read, through the store's reading connection and without mu_: a poll never waits
// for a request being decided or for a step being committed.

HttpReply InstanceService::lastOperation(const std::string& id, const HttpRequest& req) {
  std::optional<OperationRecord> op;
  const std::string token = queryValue(req, "operation");
  auto last = store_.lastOperation(id);
  if (!last.ok())
    return storeFailure(last.error());
  op = *last;
  if (!op)
    return osbError(404, "", "no such instance");
  if (!token.empty() && op->token() != token) {
    // An older operation named by its token.
    auto dash = token.rfind('-');
    int64_t n = 0;
    if (dash != std::string::npos) {
      try {
        n = std::stoll(token.substr(dash + 1));
      } catch (const std::exception&) {
        n = 0;
      }
    }
    auto named = n > 0 ? store_.operation(n) : Result<std::optional<OperationRecord>>(std::nullopt);
    if (!named.ok())
      return storeFailure(named.error());
    if (!named->has_value() || (*named)->instance_id != id || !(*named)->binding_id.empty() ||
        (*named)->token() != token)
      return osbError(400, "", fmt::format("no operation {} on this instance", jsonQuoted(token)));
    op = *named;
  }
  auto instance = store_.instance(id);
  if (!instance.ok())
    return storeFailure(instance.error());
  if (op->kind == OpKind::kDeprovision && op->state == OpState::kSucceeded &&
      !instance->has_value())
    return reply(410, json::object());
  return operationReply(*op);
}

HttpReply InstanceService::fetchInstance(const std::string& id, const HttpRequest&) {
  auto r = tenantInstance(id);
  if (!r.ok())
    return storeFailure(r.error());
  if (!r->has_value() || !(*r)->ready)
    return osbError(404, "", "no such instance (or it is still being provisioned)");
  auto last = store_.lastOperation(id);
  if (!last.ok())
    return storeFailure(last.error());
  if (last->has_value() && (*last)->state == OpState::kInProgress &&
      (*last)->kind == OpKind::kUpdate)
    return osbError(422, "ConcurrencyError", "the instance is being updated");
  const InstanceRecord& i = **r;
  json body = {{"service_id", i.service_id}, {"plan_id", i.plan_id}, {"parameters", i.parameters}};
  if (!i.maintenance_version.empty())
    body["maintenance_info"] = {{"version", i.maintenance_version}};
  // The supervisor's judgement: healthy, recovering or degraded (absent until its first look).
  auto health = store_.health(id);
  if (!health.ok())
    return storeFailure(health.error());
  if (health->has_value())
    body["metadata"] = {{"attributes", {{"health", (*health)->state}}}};
  return reply(200, body);
}

HttpReply InstanceService::update(const std::string& id, const HttpRequest& req) {
  HttpReply error;
  auto body = bodyObject(req, &error);
  if (!body)
    return error;
  const std::string service_id = stringField(*body, "service_id");
  if (service_id.empty())
    return osbError(400, "", "service_id is required");
  if (service_id != options_.catalog.service_id)
    return osbError(400, "", fmt::format("unknown service_id {}", jsonQuoted(service_id)));
  const std::string plan_id = stringField(*body, "plan_id");
  if (!plan_id.empty() && options_.catalog.planById(plan_id) == nullptr)
    return osbError(400, "", fmt::format("unknown plan_id {}", jsonQuoted(plan_id)));
  // On a worker thread, like a provision: the decision commits an operation.
  HttpReply out;
  out.deferred = [this, id, doc = std::move(*body), plan_id, accepts = acceptsIncomplete(req),
                  request = requestRecord(req)]() -> HttpReply {
    std::unique_lock<std::mutex> lk(mu_);
    auto r = tenantInstance(id);
    if (!r.ok())
      return storeFailure(r.error());
    if (!r->has_value())
      return osbError(404, "", "no such instance");
    const InstanceRecord& i = **r;
    if (HttpReply conflict;
        maintenanceConflict(doc, plan_id.empty() ? i.plan_id : plan_id, &conflict))
      return conflict;
    auto last = store_.lastOperation(id);
    if (!last.ok())
      return storeFailure(last.error());
    const bool running = last->has_value() && (*last)->state == OpState::kInProgress;
    // The same change asked again while it runs: the same operation.
    if (running && (*last)->kind == OpKind::kUpdate && !doc.contains("parameters") &&
        !(*last)->request.contains("parameters") &&
        (*last)->request.value("plan_id", "") == (plan_id.empty() ? i.plan_id : plan_id))
      return reply(202, {{"operation", (*last)->token()}});
    const bool plan_change = !plan_id.empty() && plan_id != i.plan_id;
    const Plan* target = options_.catalog.planById(plan_change ? plan_id : i.plan_id);
    // Parameters: merged over the instance's own and checked against the (new) plan's schema.
    json params = i.parameters;
    std::vector<std::string> added;
    if (auto asked = doc.find("parameters"); asked != doc.end() && !asked->is_null()) {
      if (!asked->is_object())
        return osbError(400, "", "parameters must be a JSON object");
      if (!asked->empty() && (target == nullptr || target->schema.is_null()))
        return osbError(400, "", "the instance's plan takes no parameters");
      for (const auto& [k, v] : asked->items())
        params[k] = v;
      if (params != i.parameters) {
        if (std::string v = schemaViolation(target->schema, params); !v.empty())
          return osbError(400, "", v);
        if (std::string v = settingsViolation(params.value("settings", json())); !v.empty())
          return osbError(400, "", v);
        if (params.value("database", kDefaultDatabase) !=
            i.deployment.value("database", kDefaultDatabase))
          return osbError(422, "",
                          "an instance's database cannot be renamed (its sessions would be cut); "
                          "nothing was changed");
        std::set<std::string> before, after;
        for (const auto& e : i.deployment.value("extensions", json::array()))
          if (e.is_string())
            before.insert(e.get<std::string>());
        for (const auto& e : params.value("extensions", json::array()))
          if (e.is_string())
            after.insert(e.get<std::string>());
        std::string removed;
        for (const auto& e : before)
          if (!after.count(e))
            removed += (removed.empty() ? "" : ", ") + e;
        if (!removed.empty())
          return osbError(422, "",
                          fmt::format("dropping extensions ({}) would drop what depends on them; "
                                      "nothing was changed",
                                      removed));
        for (const auto& e : after)
          if (!before.count(e))
            added.push_back(e);
      }
    }
    // The tenant's PostgreSQL settings: applied by the agents like a plan's parameters.
    const json settings_before = settingsOf(i.parameters);
    const json settings_after = settingsOf(params);
    const bool settings_change = settings_before != settings_after;
    const bool params_change = params != i.parameters;
    // The plan's newer maintenance version, asked for (maintenanceConflict has refused any other
    // version): every node's agent is rolled onto it.
    bool maintenance_change = false;
    if (auto mi = doc.find("maintenance_info"); mi != doc.end() && mi->is_object())
      maintenance_change = target != nullptr && !target->maintenance_version.empty() &&
                           stringField(*mi, "version") == target->maintenance_version &&
                           target->maintenance_version != i.maintenance_version;
    if (!plan_change && !params_change && !maintenance_change)
      return reply(200, json::object());
    const Plan* from = options_.catalog.planById(i.plan_id);
    if (plan_change || settings_change) {
      if (from == nullptr)
        return osbError(422, "",
                        "the instance's plan is no longer in the catalog; nothing was changed");
      PlanChange change = planChange(*from, *target, settings_before, settings_after);
      if (!change.refusal.empty())
        return osbError(422, "", change.refusal + "; nothing was changed");
    }
    const bool rolled = plan_change || maintenance_change || settings_change;
    if (rolled && !accepts)
      return osbError(422, "AsyncRequired",
                      "changing the plan, the settings or the maintenance version takes a while: "
                      "this broker answers asynchronously (accepts_incomplete=true)");
    if (!i.ready || running || busy_.count(id))
      return osbError(422, "ConcurrencyError", "another operation on this instance is running");
    // What applies now, live (everything but new settings, which the operation below records once
    // the agents run with them).
    json live = params;
    if (i.parameters.contains("settings"))
      live["settings"] = i.parameters["settings"];
    else
      live.erase("settings");
    if (live != i.parameters) {
      // Applied now, live: the new extensions in one transaction, then the record. The SQL runs
      // outside the lock, the instance claimed (other requests on it answer 422 meanwhile).
      busy_.insert(id);
      lk.unlock();
      struct Reclaim {
        InstanceService* service;
        const std::string& id;
        std::unique_lock<std::mutex>& lk;
        ~Reclaim() {
          lk.lock();
          service->busy_.erase(id);
        }
      } reclaim{this, id, lk};
      if (Status st = createExtensions(accessOf(i), added, options_.sql_timeout); !st.ok()) {
        spdlog::error("changing the parameters of instance {}: {}", jsonQuoted(id),
                      st.error().message);
        return osbError(
            500, "",
            "creating the extensions failed (" + st.error().message + "); nothing was changed");
      }
      InstanceRecord changed = i;
      changed.parameters = live;
      changed.deployment["extensions"] = params.value("extensions", json::array());
      std::string created;
      for (const auto& e : added)
        created += (created.empty() ? "" : ", ") + e;
      Status st = store_.transaction([&]() -> Status {
        PGF_RETURN_IF_ERROR(store_.putInstance(changed));
        return store_.addEvent(
            id, "parameters-changed",
            created.empty() ? std::string("parameters changed") : "extensions created: " + created);
      });
      if (!st.ok())
        return storeFailure(st.error());
      spdlog::info("instance {}: parameters changed{}", jsonQuoted(id),
                   requestedBy(request.value("by", json())));
      if (!rolled)
        return reply(200, json::object());
    }
    const Plan* to = target;
    OperationRecord op;
    op.kind = OpKind::kUpdate;
    op.instance_id = id;
    op.description = plan_change       ? fmt::format("updating to plan {}", to->name)
                     : settings_change ? std::string("changing the settings")
                                       : fmt::format("rolling onto maintenance version {}",
                                                     to->maintenance_version);
    op.request = request;
    op.request["plan_id"] = to->id;
    if (settings_change)
      op.request["parameters"] = params;
    if (maintenance_change)
      op.request["maintenance"] = true;
    op.request["previous_plan_id"] = i.plan_id;
    auto op_id = store_.beginOperation(op);
    if (!op_id.ok())
      return storeFailure(op_id.error());
    op.id = *op_id;
    spdlog::info("updating instance {} from plan {} to plan {} (maintenance version {}){}",
                 jsonQuoted(id), from->name, to->name, to->maintenance_version,
                 requestedBy(op.request.value("by", json())));
    killPoint("update begun");
    startWorker(id, op.id, OpKind::kUpdate);
    return reply(202, {{"operation", op.token()}});
  };
  return out;
}

Status InstanceService::patchConfig(const DeploymentManifest& m, const json& patch) {
  std::string last = "no node answered";
  for (const auto& node : m.nodes) {
    auto res = agentCall(node.api_port, "PATCH", "/config", patch, Millis(10000));
    if (res.ok() && res->status == 200)
      return okStatus();
    last = res.ok() ? fmt::format("{}: {} {}", node.name, res->status, res->body)
                    : fmt::format("{}: {}", node.name, res.error().message);
  }
  return makeError(ErrorCode::kCommandFailed, "PATCH /config: " + last);
}

Status InstanceService::restartNode(const InstanceRecord& t, const Parameters& restart_parameters,
                                    const NodeManifest& n, int64_t op_id, bool agent,
                                    const std::atomic<bool>& cancel) {
  if (agent) {
    PGF_TRY(backend_.restartAgent(t.deployment.value("name", ""), n),
            "restarting the agent of " + n.name);
    return servingAgain(n, op_id, cancel);
  }
  InstanceAccess at = accessOf(t);
  at.read_write_port = n.pg_port;
  // Its agent has written the new parameters once PostgreSQL reports a restart pending (or, when
  // a broker stopped after restarting it, once it runs with them).
  const auto configured = std::chrono::steady_clock::now() + Millis(30000);
  while (!cancel && std::chrono::steady_clock::now() < configured) {
    if (nodeView(n.api_port).pending_restart)
      break;
    if (!restart_parameters.empty()) {
      auto runs = runsWith(at, restart_parameters, options_.sql_timeout);
      if (runs.ok() && *runs)
        return journal(op_id, n.name + " restarted");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (cancel)
    return makeError(ErrorCode::kInternal, "halted");
  auto res = agentCall(n.api_port, "POST", "/restart", json::object(), Millis(180000));
  if (!res.ok())
    return res.error().wrap("restarting " + n.name);
  if (res->status != 200)
    return makeError(ErrorCode::kCommandFailed,
                     fmt::format("restarting {}: {} {}", n.name, res->status, res->body));
  return servingAgain(n, op_id, cancel);
}

Status InstanceService::servingAgain(const NodeManifest& n, int64_t op_id,
                                     const std::atomic<bool>& cancel) {
  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  while (!serving(nodeView(n.api_port))) {
    if (cancel)
      return makeError(ErrorCode::kInternal, "halted");
    if (std::chrono::steady_clock::now() >= deadline)
      return makeError(ErrorCode::kTimeout, n.name + " did not serve again after its restart");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return journal(op_id, n.name + " restarted");
}

Status InstanceService::rollingRestart(const InstanceRecord& t, const Parameters& to,
                                       const DeploymentManifest& m, int64_t op_id,
                                       const std::set<std::string>& done, bool agents,
                                       const std::atomic<bool>& cancel) {
  auto restarted = [&](const NodeManifest& n) { return done.count(n.name + " restarted") > 0; };
  // The replicas first, one at a time.
  for (const auto& n : m.nodes)
    if (!restarted(n) && nodeView(n.api_port).role != "primary")
      PGF_RETURN_IF_ERROR(restartNode(t, to, n, op_id, agents, cancel));
  killPoint("replicas restarted");
  const NodeManifest* primary = nullptr;
  for (const auto& n : m.nodes)
    if (nodeView(n.api_port).role == "primary")
      primary = &n;
  if (primary == nullptr)
    return makeError(ErrorCode::kCommandFailed, "the instance has no primary");
  if (restarted(*primary))
    return okStatus();
  if (m.nodes.size() == 1)
    return restartNode(t, to, *primary, op_id, agents, cancel);
  // Then one switchover, to a replica that runs with the new parameters, and the former primary
  // restarts as a replica.
  const NodeManifest* candidate = nullptr;
  for (const auto& n : m.nodes)
    if (&n != primary && serving(nodeView(n.api_port)))
      candidate = &n;
  if (candidate == nullptr)
    return makeError(ErrorCode::kCommandFailed, "no replica streams to take over from the primary");
  auto res = agentCall(primary->api_port, "POST", "/switchover",
                       {{"leader", primary->name}, {"candidate", candidate->name}}, Millis(120000));
  if (!res.ok())
    return res.error().wrap("switching over to " + candidate->name);
  if (res->status != 200)
    return makeError(
        ErrorCode::kCommandFailed,
        fmt::format("switching over to {}: {} {}", candidate->name, res->status, res->body));
  PGF_TRY(
      journal(op_id, fmt::format("switched over from {} to {}", primary->name, candidate->name)),
      "journal");
  return restartNode(t, to, *primary, op_id, agents, cancel);
}

Status InstanceService::updateSteps(const std::string& id, int64_t op_id,
                                    const std::atomic<bool>& cancel) {
  auto op = store_.operation(op_id);
  if (!op.ok())
    return op.error();
  auto loaded = store_.instance(id);
  if (!loaded.ok())
    return loaded.error();
  if (!op->has_value() || !loaded->has_value())
    return makeError(ErrorCode::kNotFound, "the instance is gone");
  const InstanceRecord& r = **loaded;
  const Plan* from = options_.catalog.planById(r.plan_id);
  const Plan* to = options_.catalog.planById((*op)->request.value("plan_id", ""));
  if (from == nullptr || to == nullptr)
    return makeError(ErrorCode::kConfig, "a plan is no longer in the catalog");
  // New tenant settings come with the operation; the record keeps the ones in effect until it
  // ends.
  const json& request = (*op)->request;
  const json settings_before = settingsOf(r.parameters);
  const json settings_after =
      request.contains("parameters") ? settingsOf(request["parameters"]) : settings_before;
  PlanChange change = planChange(*from, *to, settings_before, settings_after);
  if (!change.refusal.empty())
    return makeError(ErrorCode::kInvalidArgument, change.refusal);
  const std::set<std::string> done((*op)->steps.begin(), (*op)->steps.end());
  InstanceRecord t = r;
  t.plan_id = to->id;
  // A plan change, or a maintenance roll asked for, brings the (new) plan's maintenance version;
  // a change of settings alone keeps the instance's.
  const bool maintenance = from != to || request.value("maintenance", false);
  if (maintenance)
    t.maintenance_version = to->maintenance_version;
  if (settings_after != settings_before) {
    if (settings_after.empty())
      t.parameters.erase("settings");
    else
      t.parameters["settings"] = settings_after;
  }
  // A plan's newer maintenance version: every node's agent is restarted (with the agent installed
  // now and its configuration rendered anew), one node at a time.
  const bool agents = maintenance && to->maintenance_version != r.maintenance_version;
  if (change.grow) {
    // The new nodes' ports (the existing ones are kept), in the store before anything listens.
    auto ports = store_.reservePorts(id, portPurposes(*to), options_.port_low, options_.port_high,
                                     [](int port) { return !portFree(port); });
    if (!ports.ok())
      return ports.error().wrap("reserving the new nodes' ports");
    t.deployment["ports"] = *ports;
    t.deployment["read_only_port"] = ports->at("ro");
  }
  auto manifest = manifestOf(t);
  if (!manifest.ok())
    return manifest.error().wrap("rendering the deployment manifest");
  const std::string name = t.deployment.value("name", "");
  if (!done.count("configuration changed")) {
    // The cluster's dynamic configuration, which every agent applies (postgresql.conf rewritten,
    // reloaded), then the nodes' own files (what a node rebuilt later starts from).
    if (!change.config_patch.empty())
      PGF_TRY(patchConfig(*manifest, change.config_patch), "changing the configuration");
    if (!change.grow)
      PGF_TRY(backend_.deploy(name, *manifest), "writing the nodes' configuration");
    PGF_TRY(journal(op_id, "configuration changed"), "journal");
  }
  if (change.grow && !done.count("replicas streaming")) {
    // The new nodes' agents clone the primary and stream from it; the endpoints still lead to
    // the primary alone, which keeps serving throughout.
    PGF_TRY(backend_.deploy(name, *manifest), "starting the new nodes");
    const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
    for (const auto& n : manifest->nodes) {
      while (!serving(nodeView(n.api_port))) {
        if (cancel)
          return makeError(ErrorCode::kInternal, "halted");
        if (std::chrono::steady_clock::now() >= deadline)
          return makeError(ErrorCode::kTimeout, n.name + " did not stream within the timeout");
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    PGF_TRY(journal(op_id, "replicas streaming"), "journal");
  }
  if (change.grow && !done.count("endpoints updated")) {
    PGF_TRY(backend_.reloadHaproxy(name, *manifest), "adding the replicas to the endpoints");
    PGF_TRY(journal(op_id, "endpoints updated"), "journal");
  }
  if (change.restart || agents)
    PGF_RETURN_IF_ERROR(
        rollingRestart(t, change.restart_parameters, *manifest, op_id, done, agents, cancel));
  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  while (!backend_.health(name, *manifest).healthy()) {
    if (cancel)
      return makeError(ErrorCode::kInternal, "halted");
    if (std::chrono::steady_clock::now() >= deadline)
      return makeError(ErrorCode::kTimeout, "the instance was not healthy again in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const std::string rolled =
      agents ? fmt::format("maintenance version {}", to->maintenance_version) : "";
  const char* how = change.restart || agents ? ", one node at a time" : ", without a restart";
  std::string settings;
  if (settings_after != settings_before) {
    std::set<std::string> names;
    for (const auto& [k, v] : settings_before.items())
      names.insert(k);
    for (const auto& [k, v] : settings_after.items())
      names.insert(k);
    for (const auto& k : names)
      if (settings_before.value(k, json()) != settings_after.value(k, json()))
        settings += (settings.empty() ? "" : ", ") + k;
  }
  return store_.transaction([&]() -> Status {
    PGF_RETURN_IF_ERROR(store_.putInstance(t));
    if (from != to)
      PGF_RETURN_IF_ERROR(
          store_.addEvent(id, "plan-changed",
                          fmt::format("moved from plan {} to plan {}{}{}{}", from->name, to->name,
                                      how, agents ? ", onto " + rolled : "",
                                      settings.empty() ? "" : ", settings changed: " + settings)));
    else if (!settings.empty())
      PGF_RETURN_IF_ERROR(store_.addEvent(id, "parameters-changed",
                                          fmt::format("settings changed: {}{}{}", settings, how,
                                                      agents ? ", onto " + rolled : "")));
    else
      PGF_RETURN_IF_ERROR(store_.addEvent(
          id, "maintenance-applied",
          fmt::format("every node's agent restarted onto {}, one node at a time", rolled)));
    return store_.finishOperation(op_id, OpState::kSucceeded,
                                  from != to ? fmt::format("the instance runs plan {}", to->name)
                                  : !settings.empty()
                                      ? std::string("the instance runs its new settings")
                                      : fmt::format("the instance runs {}", rolled));
  });
}

void InstanceService::runUpdate(const std::string& id, int64_t op_id,
                                const std::atomic<bool>& cancel) {
  endWork(id, op_id, updateSteps(id, op_id, cancel), cancel, "updating", "is updated");
}

// ---- bind, unbind ----

InstanceService::HeldClaim::HeldClaim(InstanceService* service, std::string instance_id)
    : service_(service), instance_id_(std::move(instance_id)) {}

void InstanceService::HeldClaim::giveBack() {
  if (!given_back_.exchange(true))
    service_->release(instance_id_);
}

void InstanceService::release(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  busy_.erase(id);
}

HttpReply InstanceService::bind(const std::string& id, const std::string& bid,
                                const HttpRequest& req) {
  HttpReply error;
  auto body = bodyObject(req, &error);
  if (!body)
    return error;
  const std::string service_id = stringField(*body, "service_id");
  const std::string plan_id = stringField(*body, "plan_id");
  if (service_id.empty() || plan_id.empty())
    return osbError(400, "", "service_id and plan_id are required strings");
  if (service_id != options_.catalog.service_id)
    return osbError(400, "", fmt::format("unknown service_id {}", jsonQuoted(service_id)));
  if (options_.catalog.planById(plan_id) == nullptr)
    return osbError(400, "", fmt::format("unknown plan_id {}", jsonQuoted(plan_id)));
  json params = body->contains("parameters") ? (*body)["parameters"] : json::object();
  if (!params.is_object() || !params.empty())
    return osbError(400, "", "a binding takes no parameters");
  if (body->contains("predecessor_binding_id"))
    return osbError(400, "",
                    "this broker's plans are not binding_rotatable: bind anew, then unbind the old "
                    "binding");
  const json request = requestRecord(req);

  std::optional<InstanceRecord> instance;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto r = tenantInstance(id);
    if (!r.ok())
      return storeFailure(r.error());
    if (!r->has_value())
      return osbError(404, "", "no such instance");
    auto last = store_.lastOperation(id);
    if (!last.ok())
      return storeFailure(last.error());
    if (!(*r)->ready || (last->has_value() && (*last)->state == OpState::kInProgress))
      return osbError(422, "ConcurrencyError", "an operation on this instance is in progress");
    auto existing = store_.binding(id, bid);
    if (!existing.ok())
      return storeFailure(existing.error());
    if (existing->has_value() && (*existing)->ready) {
      if ((*existing)->parameters == params)
        return reply(200, {{"credentials", (*existing)->credentials}});
      return osbError(409, "", "a binding with this id exists with other attributes");
    }
    // A binding that is not ready is either being made by a bind that holds the instance's claim
    // (422, like any other bind or unbind running on it), or what an earlier attempt left when
    // its role could be neither created nor dropped (no claim held: rolled back below, then
    // bound afresh). The claim is taken under the same lock as the checks above, so that a bind
    // ending in between cannot leave this one overwriting the binding it has just made.
    if (!busy_.insert(id).second)
      return osbError(422, "ConcurrencyError",
                      existing->has_value()
                          ? "this binding is being created, or another bind or unbind on this "
                            "instance is running"
                          : "another bind or unbind on this instance is running");
    instance = **r;
  }

  HttpReply out;
  auto held = std::make_shared<HeldClaim>(this, id);
  out.deferred = [this, held, id, bid, params, request, instance = *instance]() -> HttpReply {
    struct GiveBack {
      HeldClaim& claim;
      ~GiveBack() { claim.giveBack(); }
    } give_back{*held};
    // A binding record that is not ready, with no bind running (the claim above), is what an
    // earlier attempt left when its role could not be created nor dropped (PostgreSQL down): it
    // is rolled back now, so that the platform's retry is a new attempt.
    if (Status st = rollBackLeftoverBind(id, bid); !st.ok())
      return osbError(
          500, "",
          "an earlier attempt at this binding left a role that cannot be dropped yet (" +
              st.error().message + "); try again later");
    InstanceAccess access = accessOf(instance);
    const std::string role = randomName("b_", 16);
    const std::string password = randomSecret();
    BindingRecord b;
    b.id = bid;
    b.instance_id = id;
    b.parameters = params;
    b.credentials = bindingCredentials(access, role, password);
    OperationRecord op;
    op.kind = OpKind::kBind;
    op.instance_id = id;
    op.binding_id = bid;
    op.request = request;
    // The role's name and password are committed before the role exists, so that a broker
    // killed in between can find and drop it.
    auto begun = store_.beginOperation(op, [&] { return store_.putBinding(b); });
    if (!begun.ok())
      return storeFailure(begun.error());
    const int64_t op_id = *begun;
    Status st = createBindingRole(access, role, password, options_.sql_timeout);
    if (!st.ok()) {
      spdlog::error("binding {} to instance {}: {}", jsonQuoted(bid), jsonQuoted(id),
                    st.error().message);
      op.id = op_id;
      if (!rollBackBind(op).ok())  // logged inside
        return osbError(500, "",
                        "creating the binding's role failed, and so did removing what was made "
                        "of it: a retry of this bind, an unbind or the broker's next start "
                        "removes it");
      return osbError(500, "", "creating the binding's role failed; nothing was kept");
    }
    killPoint("role created");
    b.ready = true;
    st = store_.transaction([&]() -> Status {
      PGF_RETURN_IF_ERROR(store_.putBinding(b));
      return store_.finishOperation(op_id, OpState::kSucceeded, "bound");
    });
    if (!st.ok())
      return storeFailure(st.error());
    spdlog::info("bound {} to instance {} as role {}{}", jsonQuoted(bid), jsonQuoted(id), role,
                 requestedBy(request.value("by", json())));
    return reply(201, {{"credentials", b.credentials}});
  };
  return out;
}

Status InstanceService::removeBinding(const OperationRecord& op, OpState end,
                                      const std::string& description) {
  auto instance = store_.instance(op.instance_id);
  auto binding = store_.binding(op.instance_id, op.binding_id);
  if (!instance.ok() || !binding.ok())
    return makeError(ErrorCode::kIo, "store");
  if (instance->has_value() && binding->has_value()) {
    const std::string role = (*binding)->credentials.value("username", "");
    if (!role.empty())
      PGF_TRY(dropBindingRole(accessOf(**instance), role, options_.sql_timeout),
              "dropping the binding's role");
  }
  PGF_TRY(journal(op.id, "role dropped"), "journal");
  return store_.transaction([&]() -> Status {
    PGF_RETURN_IF_ERROR(store_.deleteBinding(op.instance_id, op.binding_id));
    return store_.finishOperation(op.id, end, description);
  });
}

Status InstanceService::rollBackLeftoverBind(const std::string& id, const std::string& bid) {
  auto existing = store_.binding(id, bid);
  if (!existing.ok())
    return existing.error();
  if (!existing->has_value() || (*existing)->ready)
    return {};
  auto last = store_.lastOperation(id, bid);
  if (!last.ok())
    return last.error();
  if (last->has_value() && (*last)->kind == OpKind::kBind && (*last)->state == OpState::kInProgress)
    return rollBackBind(**last);
  // A record is only ever written together with its bind operation (beginOperation).
  return makeError(ErrorCode::kInternal, "the binding has no bind operation to roll back");
}

Status InstanceService::rollBackBind(const OperationRecord& op) {
  Status st = removeBinding(op, OpState::kFailed, "rolled back");
  if (!st.ok())
    spdlog::error("rolling back binding {}: {}", jsonQuoted(op.binding_id), st.error().message);
  return st;
}

Status InstanceService::finishUnbind(const OperationRecord& op) {
  return removeBinding(op, OpState::kSucceeded, "unbound");
}

HttpReply InstanceService::unbind(const std::string& id, const std::string& bid,
                                  const HttpRequest& req) {
  if (queryValue(req, "service_id").empty() || queryValue(req, "plan_id").empty())
    return osbError(400, "", "service_id and plan_id are required query parameters");
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto b = store_.binding(id, bid);
    if (!b.ok())
      return storeFailure(b.error());
    if (!b->has_value())
      return reply(410, json::object());
    // Claimed under the same lock as the check, so that an unbind ending in between is seen.
    if (!busy_.insert(id).second)
      return osbError(422, "ConcurrencyError",
                      "another bind or unbind on this instance is running");
  }
  HttpReply out;
  auto held = std::make_shared<HeldClaim>(this, id);
  out.deferred = [this, held, id, bid, request = requestRecord(req)]() -> HttpReply {
    struct GiveBack {
      HeldClaim& claim;
      ~GiveBack() { claim.giveBack(); }
    } give_back{*held};
    OperationRecord op;
    op.kind = OpKind::kUnbind;
    op.instance_id = id;
    op.binding_id = bid;
    op.request = request;
    auto op_id = store_.beginOperation(op);
    if (!op_id.ok())
      return storeFailure(op_id.error());
    op.id = *op_id;
    Status st = finishUnbind(op);
    if (!st.ok()) {
      spdlog::error("unbinding {} from instance {}: {}", jsonQuoted(bid), jsonQuoted(id),
                    st.error().message);
      ignoreError(store_.finishOperation(op.id, OpState::kFailed, st.error().message),
                  "logged above; the binding stays and the unbind can be repeated");
      return osbError(500, "", "dropping the binding's role failed; the binding is kept");
    }
    spdlog::info("unbound {} from instance {}{}", jsonQuoted(bid), jsonQuoted(id),
                 requestedBy(request.value("by", json())));
    return reply(200, json::object());
  };
  return out;
}

HttpReply InstanceService::fetchBinding(const std::string& id, const std::string& bid,
                                        const HttpRequest&) {
  auto b = store_.binding(id, bid);
  if (!b.ok())
    return storeFailure(b.error());
  if (!b->has_value() || !(*b)->ready)
    return osbError(404, "", "no such binding");
  return reply(200, {{"credentials", (*b)->credentials}, {"parameters", (*b)->parameters}});
}

HttpReply InstanceService::bindingLastOperation(const std::string& id, const std::string& bid,
                                                const HttpRequest&) {
  auto op = store_.lastOperation(id, bid);
  if (!op.ok())
    return storeFailure(op.error());
  if (!op->has_value())
    return osbError(404, "", "no such binding");
  return operationReply(**op);
}

// ---- restart ----

void InstanceService::resumeUnfinished() {
  auto ops = store_.unfinishedOperations();
  if (!ops.ok()) {
    spdlog::error("reading unfinished operations: {}", ops.error().message);
    return;
  }
  for (const auto& op : *ops) {
    const std::string steps = op.steps.empty() ? "none" : op.steps.back();
    switch (op.kind) {
      case OpKind::kProvision:
      case OpKind::kUpdate:
      case OpKind::kDeprovision: {
        spdlog::info("resuming {} of instance {} (last step done: {})", opKindName(op.kind),
                     jsonQuoted(op.instance_id), steps);
        std::lock_guard<std::mutex> lk(mu_);
        startWorker(op.instance_id, op.id, op.kind);
        break;
      }
      case OpKind::kBind:
        spdlog::info("rolling back the unfinished bind {} of instance {}",
                     jsonQuoted(op.binding_id), jsonQuoted(op.instance_id));
        ignoreError(rollBackBind(op), "logged inside; tried again at the next start");
        break;
      case OpKind::kUnbind:
        spdlog::info("finishing the unbind {} of instance {}", jsonQuoted(op.binding_id),
                     jsonQuoted(op.instance_id));
        if (Status st = finishUnbind(op); !st.ok())
          spdlog::error("finishing the unbind: {}", st.error().message);
        break;
    }
  }
}

}  // namespace pgf
