#include "ctl/pause.h"

#include <algorithm>
#include <ostream>

#include <fmt/format.h>

namespace pgf::ctl {
namespace {

using nlohmann::json;

const char* verb(bool pause) {
  return pause ? "pause" : "resume";
}

struct Answered {
  std::string member;
  ApiAnswer answer;
};

// PATCH /config on the first member that answers. Only an unreachable member makes it try the
// next: any answer, even a refusal, is the cluster's answer.
Result<Answered> patchConfig(const CtlTarget& target, MemberApi& api,
                             const std::vector<PauseTarget>& targets, const PauseOptions& options) {
  const std::string body = json{{"pause", options.pause ? json(true) : json(nullptr)}}.dump();
  std::string failures;
  for (const auto& t : targets) {
    auto answer = callMemberApi(api, t.address, target.api_credentials, "PATCH", "/config", body,
                                options.request_timeout);
    if (answer.ok())
      return Answered{t.member, std::move(answer).value()};
    if (!isUnreachable(answer.error()))
      return answer.error();
    failures += (failures.empty() ? "" : "; ") + t.member + ": " + answer.error().message;
  }
  return makeError(ErrorCode::kIo, fmt::format("{} failed: no member's REST API answered ({})",
                                               verb(options.pause), failures));
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Polls every member's GET /patroni until all of them report the requested state, or the wait
// times out.
Status waitForMembers(MemberApi& api, const std::vector<PauseTarget>& targets,
                      const PauseOptions& options, OutputFormat format, const Sleeper& sleeper,
                      std::ostream& err) {
  const MonoTime deadline = sleeper.clock.now() + options.wait_timeout;
  size_t shown = targets.size() + 1;  // nothing shown yet
  while (true) {
    std::vector<std::string> pending;
    for (const auto& t : targets) {
      // Even the last round, at the deadline, gives each member a fair chance to answer.
      auto left = std::chrono::duration_cast<Millis>(deadline - sleeper.clock.now());
      auto timeout = std::min(options.request_timeout, std::max(left, options.poll_interval));
      auto answer = callMemberApi(api, t.address, {}, "GET", "/patroni", "", timeout);
      if (!answer.ok() || reportedPause(answer->body) != options.pause)
        pending.push_back(t.member);
    }
    if (pending.empty())
      return okStatus();
    if (format == OutputFormat::kPretty && pending.size() != shown)
      err << fmt::format("waiting for {} member{} ({}) ...\n", pending.size(),
                         pending.size() == 1 ? "" : "s", joinNames(pending))
          << std::flush;
    shown = pending.size();
    const MonoTime now = sleeper.clock.now();
    if (now >= deadline)
      return makeError(
          ErrorCode::kTimeout,
          fmt::format("{} requested, but {} did not apply it within {} s", verb(options.pause),
                      joinNames(pending), options.wait_timeout.count() / 1000));
    sleeper.sleep(
        std::min(options.poll_interval, std::chrono::duration_cast<Millis>(deadline - now)));
  }
}

}  // namespace

bool clusterPaused(const ClusterView& cluster) {
  return cluster.config && cluster.config->is_object() &&
         cluster.config->value("pause", json(false)) == json(true);
}

Status checkPauseChange(const ClusterView& cluster, bool pause) {
  if (clusterPaused(cluster) != pause)
    return okStatus();
  return makeError(ErrorCode::kInvalidArgument,
                   pause ? "cluster is already paused" : "cluster is not paused");
}

Result<std::vector<PauseTarget>> pauseTargets(const std::string& scope,
                                              const ClusterView& cluster) {
  std::vector<const MemberInfo*> order;
  for (const auto& m : cluster.members)
    order.push_back(&m);
  const std::string leader = cluster.leader ? cluster.leader->name : "";
  std::sort(order.begin(), order.end(), [&](const MemberInfo* a, const MemberInfo* b) {
    return std::make_pair(a->name != leader, a->name) < std::make_pair(b->name != leader, b->name);
  });
  std::vector<PauseTarget> targets;
  for (const MemberInfo* m : order) {
    auto address = parseApiUrl(m->api_url);
    if (address.ok())
      targets.push_back({m->name, std::move(address).value()});
  }
  if (targets.empty())
    return makeError(
        ErrorCode::kNotFound,
        fmt::format("no member of cluster {} publishes a usable REST API address (api_url)",
                    scope));
  return targets;
}

std::optional<bool> reportedPause(const std::string& body) {
  json doc = json::parse(body, nullptr, false);
  if (!doc.is_object())
    return std::nullopt;
  return doc.value("pause", json(false)) == json(true);
}

int runPause(const CtlTarget& target, Dcs& dcs, MemberApi& api, const PauseOptions& options,
             OutputFormat format, const Sleeper& sleeper, std::ostream& out, std::ostream& err) {
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return reportFailure(err, cluster.error());
  if (auto st = checkPauseChange(cluster.value(), options.pause); !st.ok())
    return reportFailure(err, st.error());
  auto targets = pauseTargets(target.scope, cluster.value());
  if (!targets.ok())
    return reportFailure(err, targets.error());

  auto answered = patchConfig(target, api, targets.value(), options);
  if (!answered.ok())
    return reportFailure(err, answered.error());
  const ApiAnswer& answer = answered->answer;
  if (answer.status != 200)
    return reportFailure(err, makeError(ErrorCode::kInvalidArgument,
                                        fmt::format("{} failed: {} {}", verb(options.pause),
                                                    answer.status, answerText(answer.body))));
  if (options.wait) {
    if (auto st = waitForMembers(api, targets.value(), options, format, sleeper, err); !st.ok())
      return reportFailure(err, st.error());
  }

  const std::string message =
      fmt::format("Success: cluster management is {}", options.pause ? "paused" : "resumed");
  if (format == OutputFormat::kJson)
    out << json{{"action", verb(options.pause)},
                {"member", answered->member},
                {"status", answer.status},
                {"message", message}}
               .dump()
        << "\n";
  else
    out << message << "\n";
  return 0;
}

}  // namespace pgf::ctl
