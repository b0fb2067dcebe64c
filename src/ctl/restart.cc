#include "ctl/restart.h"

#include <algorithm>
#include <ostream>

#include <fmt/format.h>

#include "ctl/switchover.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

Error invalid(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, std::move(message));
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The answer as a failure message names it: "503 restart failed: ...", or the transport error.
std::string answerSummary(const MemberOutcome& o) {
  return o.status ? fmt::format("{} {}", *o.status, o.message) : o.message;
}

// How a verb asks each member, and what an answer means.
struct MemberCall {
  std::string progress;  // "restarting": the progress line's verb
  std::string path;
  std::string body;
  Millis timeout;
  bool stop_at_failure;
  MemberOutcome (*interpret)(const MemberTarget&, const Result<ApiAnswer>&);
};

// Asks each target in turn. In pretty mode each outcome line is printed as soon as it is known,
// since a restart can take minutes; after a failure with `stop_at_failure`, the rest are not
// asked.
std::vector<MemberOutcome> callEach(const CtlTarget& target, MemberApi& api,
                                    const std::vector<MemberTarget>& targets,
                                    const MemberCall& call, OutputFormat format, std::ostream& out,
                                    std::ostream& err) {
  std::vector<MemberOutcome> outcomes;
  bool stopped = false;
  for (const auto& t : targets) {
    if (stopped) {
      outcomes.push_back({t.member, t.role, Outcome::kNotTried, std::nullopt, "not tried"});
    } else {
      if (format == OutputFormat::kPretty)
        err << fmt::format("{} {} ({}) ...\n", call.progress, t.member, t.role) << std::flush;
      auto answer = callMemberApi(api, t.address, target.api_credentials, "POST", call.path,
                                  call.body, call.timeout);
      outcomes.push_back(call.interpret(t, answer));
      stopped = call.stop_at_failure && outcomes.back().outcome == Outcome::kFailed;
    }
    if (format == OutputFormat::kPretty)
      out << outcomeLine(outcomes.back()) << "\n" << std::flush;
  }
  if (format == OutputFormat::kJson)
    out << outcomesJson(outcomes).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  return outcomes;
}

// Reads the cluster and plans the members to ask; warns about those left out.
Result<MemberPlan> loadPlan(const CtlTarget& target, Dcs& dcs,
                            const std::vector<std::string>& members, std::ostream& err) {
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return cluster.error();
  auto plan = planMembers(target.scope, cluster.value(), members);
  if (plan.ok() && !plan->left_out.empty())
    err << fmt::format("pgfleetctl: warning: left out {}: no REST API address (api_url)\n",
                       joinNames(plan->left_out));
  return plan;
}

}  // namespace

MemberOutcome answered(const MemberTarget& target, const Result<ApiAnswer>& answer) {
  MemberOutcome o{target.member, target.role, Outcome::kFailed, std::nullopt, ""};
  if (!answer.ok()) {
    o.message = answer.error().message;
    return o;
  }
  o.status = answer->status;
  o.message = answerText(answer->body);
  return o;
}

// Without a leader key (the lease ran out, or the cluster is paused while PostgreSQL was promoted
// by hand) a member that says it runs as primary counts as the leader all the same: restarting it
// first would take the cluster's only writer down while its replicas are still to go, and
// reinitializing it would wipe that writer's data.
bool isLeader(const ClusterView& cluster, const MemberInfo& member) {
  if (cluster.leader && !cluster.leader->name.empty())
    return member.name == cluster.leader->name;
  return member.isPrimaryRole();
}

Result<RestartRole> parseRestartRole(const std::string& text) {
  if (text == "any")
    return RestartRole::kAny;
  if (text == "primary" || text == "master")
    return RestartRole::kPrimary;
  if (text == "replica")
    return RestartRole::kReplica;
  return invalid(fmt::format("unknown role \"{}\": use primary, replica or any", text));
}

Result<MemberPlan> planMembers(const std::string& scope, const ClusterView& cluster,
                               const std::vector<std::string>& names) {
  std::vector<std::string> wanted = names;
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  for (const auto& name : wanted)
    if (!cluster.member(name))
      return invalid(fmt::format("member {} does not exist in cluster {}", name, scope));

  std::vector<const MemberInfo*> members;
  for (const auto& m : cluster.members)
    if (wanted.empty() || std::binary_search(wanted.begin(), wanted.end(), m.name))
      members.push_back(&m);
  std::sort(members.begin(), members.end(),
            [](const MemberInfo* a, const MemberInfo* b) { return a->name < b->name; });

  MemberPlan plan;
  for (const MemberInfo* m : members) {
    if (m->api_url.empty()) {
      if (!wanted.empty())
        return invalid(fmt::format("member {} publishes no REST API address (api_url)", m->name));
      plan.left_out.push_back(m->name);
      continue;
    }
    auto address = parseApiUrl(m->api_url);
    if (!address.ok())
      return address.error().wrap("member " + m->name);
    plan.targets.push_back(
        {m->name, isLeader(cluster, *m) ? "leader" : "replica", std::move(address).value()});
  }
  if (plan.targets.empty())
    return makeError(
        ErrorCode::kNotFound,
        fmt::format("no member of cluster {} publishes a REST API address (api_url)", scope));
  return plan;
}

std::vector<MemberTarget> rollingOrder(std::vector<MemberTarget> targets) {
  std::sort(targets.begin(), targets.end(), [](const MemberTarget& a, const MemberTarget& b) {
    return std::make_pair(a.role == "leader", a.member) <
           std::make_pair(b.role == "leader", b.member);
  });
  return targets;
}

json restartBody(const RestartRequest& request) {
  json body = json::object();
  if (request.role == RestartRole::kPrimary)
    body["role"] = "primary";
  else if (request.role == RestartRole::kReplica)
    body["role"] = "replica";
  if (request.pending)
    body["restart_pending"] = true;
  if (!request.scheduled.empty() && request.scheduled != "now")
    body["schedule"] = request.scheduled;
  return body;
}

MemberOutcome restartOutcome(const MemberTarget& target, const Result<ApiAnswer>& answer) {
  MemberOutcome o = answered(target, answer);
  if (o.status == 200 || o.status == 202) {
    o.outcome = Outcome::kDone;
    if (o.message.empty())
      o.message = o.status == 200 ? "restarted" : "Restart scheduled";
  } else if (o.status == 412) {
    o.outcome = Outcome::kSkipped;
    if (o.message.empty())
      o.message = "restart conditions are not satisfied";
  }
  return o;
}

MemberOutcome reloadOutcome(const MemberTarget& target, const Result<ApiAnswer>& answer) {
  MemberOutcome o = answered(target, answer);
  if (o.status == 200 || o.status == 202) {
    o.outcome = Outcome::kDone;
    if (o.message.empty())
      o.message = "reloaded";
  }
  return o;
}

std::string outcomeLine(const MemberOutcome& o) {
  switch (o.outcome) {
    case Outcome::kDone:
      return o.member + ": " + o.message;
    case Outcome::kSkipped:
      return o.member + ": skipped: " + o.message;
    case Outcome::kFailed:
      return o.member + ": failed: " + answerSummary(o);
    case Outcome::kNotTried:
      break;
  }
  return o.member + ": not tried";
}

json outcomesJson(const std::vector<MemberOutcome>& outcomes) {
  json array = json::array();
  for (const auto& o : outcomes)
    array.push_back({{"member", o.member},
                     {"role", o.role},
                     {"status", o.status ? json(*o.status) : json(nullptr)},
                     {"message", o.message}});
  return array;
}

std::optional<std::string> firstFailure(const std::string& verb,
                                        const std::vector<MemberOutcome>& outcomes) {
  auto failed = std::find_if(outcomes.begin(), outcomes.end(),
                             [](const MemberOutcome& o) { return o.outcome == Outcome::kFailed; });
  if (failed == outcomes.end())
    return std::nullopt;
  std::vector<std::string> not_tried;
  for (const auto& o : outcomes)
    if (o.outcome == Outcome::kNotTried)
      not_tried.push_back(o.member);
  std::string message =
      fmt::format("{} failed on {}: {}", verb, failed->member, answerSummary(*failed));
  if (!not_tried.empty())
    message += "; not tried: " + joinNames(not_tried);
  return message;
}

int runRestart(const CtlTarget& target, Dcs& dcs, MemberApi& api, const RestartRequest& request,
               OutputFormat format, std::ostream& out, std::ostream& err) {
  const bool scheduled = !request.scheduled.empty() && request.scheduled != "now";
  if (scheduled)
    if (auto st = checkScheduledTime(request.scheduled); !st.ok())
      return reportFailure(err, st.error());
  auto plan = loadPlan(target, dcs, request.members, err);
  if (!plan.ok())
    return reportFailure(err, plan.error());
  const MemberCall call{scheduled ? "scheduling a restart of" : "restarting",
                        "/restart",
                        restartBody(request).dump(),
                        request.timeout,
                        true,
                        restartOutcome};
  const auto outcomes = callEach(target, api, rollingOrder(plan->targets), call, format, out, err);
  const auto failure = firstFailure("restart", outcomes);
  return failure ? reportFailure(err, invalid(*failure)) : 0;
}

int runReload(const CtlTarget& target, Dcs& dcs, MemberApi& api,
              const std::vector<std::string>& members, Millis timeout, OutputFormat format,
              std::ostream& out, std::ostream& err) {
  auto plan = loadPlan(target, dcs, members, err);
  if (!plan.ok())
    return reportFailure(err, plan.error());
  const MemberCall call{"reloading", "/reload", "", timeout, false, reloadOutcome};
  const auto outcomes = callEach(target, api, plan->targets, call, format, out, err);

  std::vector<std::string> failed;
  for (const auto& o : outcomes)
    if (o.outcome == Outcome::kFailed)
      failed.push_back(o.member);
  if (failed.empty())
    return 0;
  return reportFailure(err, invalid(fmt::format("reload failed on {}", joinNames(failed))));
}

}  // namespace pgf::ctl
