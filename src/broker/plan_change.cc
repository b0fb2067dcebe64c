#include "broker/plan_change.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>

#include <fmt/format.h>

namespace pgf {
namespace {

// What PostgreSQL 15 reads only at server start (context "postmaster") among the parameters a
// plan is likely to set; any other parameter is taken by a reload.
const std::set<std::string>& restartOnly() {
  static const std::set<std::string> names = {"shared_buffers",
                                              "max_connections",
                                              "max_worker_processes",
                                              "max_prepared_transactions",
                                              "max_locks_per_transaction",
                                              "max_wal_senders",
                                              "max_replication_slots",
                                              "wal_level",
                                              "huge_pages",
                                              "shared_preload_libraries",
                                              "wal_buffers",
                                              "max_pred_locks_per_transaction",
                                              "track_commit_timestamp",
                                              "archive_mode",
                                              "superuser_reserved_connections",
                                              "port",
                                              "listen_addresses",
                                              "max_files_per_process"};
  return names;
}

// A setting's value as a number of kB (sizes) or as itself (integers); nullopt when it is not
// one.
std::optional<long long> settingValue(const TenantSetting& t, const nlohmann::json& v) {
  if (!t.size)
    return v.is_number_integer() ? std::optional<long long>(v.get<long long>()) : std::nullopt;
  if (!v.is_string())
    return std::nullopt;
  const std::string s = v.get<std::string>();
  size_t digits = 0;
  while (digits < s.size() && digits < 12 && s[digits] >= '0' && s[digits] <= '9')
    ++digits;
  if (digits == 0 || digits == 12)
    return std::nullopt;
  const long long n = std::stoll(s.substr(0, digits));
  const std::string unit = s.substr(digits);
  if (unit == "kB")
    return n;
  if (unit == "MB")
    return n * 1024;
  if (unit == "GB")
    return n * 1024 * 1024;
  return std::nullopt;
}

const TenantSetting* tenantSetting(const std::string& name) {
  for (const auto& t : tenantSettings())
    if (name == t.name)
      return &t;
  return nullptr;
}

// The settings a standby must run at least as high as its primary.
bool standbyBound(const std::string& name) {
  return name == "max_locks_per_transaction" || name == "max_prepared_transactions";
}

std::string settingText(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

const std::vector<TenantSetting>& tenantSettings() {
  static const std::vector<TenantSetting> settings = {
      {"work_mem", false, true, 64, 2LL * 1024 * 1024},
      {"maintenance_work_mem", false, true, 1024, 2LL * 1024 * 1024},
      {"statement_timeout", false, false, 0, 2147483647},
      {"lock_timeout", false, false, 0, 2147483647},
      {"idle_in_transaction_session_timeout", false, false, 0, 2147483647},
      {"log_min_duration_statement", false, false, -1, 2147483647},
      {"max_locks_per_transaction", true, false, 10, 65536},
      {"max_prepared_transactions", true, false, 0, 10000},
  };
  return settings;
}

std::string settingsViolation(const nlohmann::json& settings) {
  if (settings.is_null())
    return "";
  if (!settings.is_object())
    return "settings must be an object";
  for (const auto& [k, v] : settings.items()) {
    const TenantSetting* t = tenantSetting(k);
    if (t == nullptr)
      return fmt::format("settings: {} is not a setting an instance may choose", k);
    auto n = settingValue(*t, v);
    if (!n)
      return fmt::format("settings.{} must be {}", k,
                         t->size ? "a size such as \"64MB\" (kB, MB or GB)" : "an integer");
    if (*n < t->minimum || *n > t->maximum)
      return fmt::format("settings.{} must be between {}{} and {}{}", k, t->minimum,
                         t->size ? "kB" : "", t->maximum, t->size ? "kB" : "");
  }
  return "";
}

std::vector<std::pair<std::string, std::string>> planParameters(const Plan& plan,
                                                                const nlohmann::json& settings) {
  std::vector<std::pair<std::string, std::string>> out = {
      {"shared_buffers", plan.resources.shared_buffers},
      {"max_connections", std::to_string(plan.resources.max_connections)},
      {"work_mem", plan.resources.work_mem}};
  for (const auto& [k, v] : plan.parameters)
    out.emplace_back(k, v);
  if (plan.nodes > 1 && plan.parameters.count("wal_keep_size") == 0)
    out.emplace_back("wal_keep_size", "128MB");
  if (settingsViolation(settings).empty() && settings.is_object()) {
    for (const auto& [k, v] : settings.items()) {
      auto same = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == k; });
      if (same != out.end())
        same->second = settingText(v);
      else
        out.emplace_back(k, settingText(v));
    }
  }
  return out;
}

PlanChange planChange(const Plan& from, const Plan& to, const nlohmann::json& settings_before,
                      const nlohmann::json& settings_after) {
  PlanChange c;
  if (to.nodes < from.nodes) {
    c.refusal = fmt::format(
        "plan {} is a single server and this instance is a cluster of {} nodes: its replicas, "
        "and the copies of the data they hold, would be lost",
        to.name, from.nodes);
  } else if (to.resources.disk_quota_mb > 0 &&
             (from.resources.disk_quota_mb == 0 ||
              to.resources.disk_quota_mb < from.resources.disk_quota_mb)) {
    c.refusal = fmt::format(
        "plan {} has a smaller disk quota ({} MB) than this instance ({}): its data may not fit",
        to.name, to.resources.disk_quota_mb,
        from.resources.disk_quota_mb == 0 ? std::string("no quota")
                                          : fmt::format("{} MB", from.resources.disk_quota_mb));
  } else if (to.resources.max_connections < from.resources.max_connections) {
    c.refusal = fmt::format(
        "plan {} allows fewer connections ({}) than this instance ({}): the application may hold "
        "them, and a standby cannot run with fewer than its primary",
        to.name, to.resources.max_connections, from.resources.max_connections);
  } else if (to.template_file != from.template_file) {
    c.refusal = fmt::format("plan {} deploys another template ({}) than this instance ({})",
                            to.name, to.template_file, from.template_file);
  }
  for (const auto& t : tenantSettings()) {
    if (!c.refusal.empty())
      break;
    if (!standbyBound(t.name))
      continue;
    // PostgreSQL's defaults: 64 and 0.
    const long long fallback = std::string_view(t.name) == "max_locks_per_transaction" ? 64 : 0;
    auto valueIn = [&](const nlohmann::json& settings) {
      if (settings.is_object() && settings.contains(t.name))
        if (auto v = settingValue(t, settings[t.name]))
          return *v;
      return fallback;
    };
    const long long was = valueIn(settings_before);
    const long long now = valueIn(settings_after);
    if (now < was)
      c.refusal = fmt::format(
          "settings.{} cannot go down ({} to {}): a standby must run with at least its "
          "primary's, and the replicas restart first",
          t.name, was, now);
  }
  if (!c.refusal.empty())
    return c;

  std::map<std::string, std::string> before, after;
  for (auto& [k, v] : planParameters(from, settings_before))
    before[k] = v;
  for (auto& [k, v] : planParameters(to, settings_after))
    after[k] = v;
  nlohmann::json parameters = nlohmann::json::object();
  for (const auto& [k, v] : after) {
    auto was = before.find(k);
    if (was != before.end() && was->second == v)
      continue;
    parameters[k] = v;
    if (restartOnly().count(k) > 0) {
      c.restart = true;
      c.restart_parameters.emplace_back(k, v);
    }
  }
  for (const auto& [k, v] : before) {
    if (after.count(k) == 0) {
      parameters[k] = nullptr;
      c.restart = c.restart || restartOnly().count(k) > 0;
    }
  }
  if (!parameters.empty())
    c.config_patch["postgresql"] = {{"parameters", parameters}};
  c.grow = to.nodes > from.nodes;
  for (auto [key, before_s, after_s] :
       {std::tuple{"ttl", from.ttl, to.ttl}, std::tuple{"loop_wait", from.loop_wait, to.loop_wait},
        std::tuple{"retry_timeout", from.retry_timeout, to.retry_timeout}})
    if (before_s != after_s)
      c.config_patch[key] = after_s;
  c.synchronous_mode_changes = from.synchronous_mode != to.synchronous_mode;
  if (c.synchronous_mode_changes)
    c.config_patch["synchronous_mode"] = to.synchronous_mode;
  return c;
}

}  // namespace pgf
