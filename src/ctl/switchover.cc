#include "ctl/switchover.h"

#include <cctype>
#include <ostream>

#include <fmt/format.h>

#include "ctl/list.h"
#include "ctl/pause.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

Error invalid(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, std::move(message));
}

// Reads `count` digits at `pos` as a number within [low, high]; advances `pos`.
bool readNumber(const std::string& s, size_t& pos, size_t count, int low, int high) {
  if (pos + count > s.size())
    return false;
  int value = 0;
  for (size_t i = 0; i < count; ++i) {
    char c = s[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return false;
    value = value * 10 + (c - '0');
  }
  pos += count;
  return value >= low && value <= high;
}

bool readChar(const std::string& s, size_t& pos, const char* allowed) {
  if (pos >= s.size() || std::string_view(allowed).find(s[pos]) == std::string_view::npos)
    return false;
  ++pos;
  return true;
}

bool isIsoTimeWithZone(const std::string& s) {
  size_t p = 0;
  if (!(readNumber(s, p, 4, 0, 9999) && readChar(s, p, "-") && readNumber(s, p, 2, 1, 12) &&
        readChar(s, p, "-") && readNumber(s, p, 2, 1, 31) && readChar(s, p, "Tt ") &&
        readNumber(s, p, 2, 0, 23) && readChar(s, p, ":") && readNumber(s, p, 2, 0, 59)))
    return false;
  if (readChar(s, p, ":")) {
    if (!readNumber(s, p, 2, 0, 60))
      return false;
    if (readChar(s, p, ".,")) {
      size_t digits = 0;
      while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p])))
        ++p, ++digits;
      if (digits == 0)
        return false;
    }
  }
  if (readChar(s, p, "Zz"))
    return p == s.size();
  if (!(readChar(s, p, "+-") && readNumber(s, p, 2, 0, 23)))
    return false;
  if (p == s.size())
    return true;
  readChar(s, p, ":");  // +02:00 and +0200 are both ISO 8601
  return readNumber(s, p, 2, 0, 59) && p == s.size();
}

// A member that may become leader, or the reason it may not.
Status checkCandidate(const std::string& scope, const ClusterView& cluster,
                      const std::string& candidate, const std::string& leader,
                      const std::string& action) {
  const MemberInfo* m = cluster.member(candidate);
  if (!m)
    return invalid(fmt::format("member {} does not exist in cluster {}", candidate, scope));
  if (candidate == leader)
    return invalid(action + " target and source are the same");
  if (m->tags.nofailover)
    return invalid(
        fmt::format("member {} is tagged nofailover: it cannot become the leader", candidate));
  return okStatus();
}

Result<ApiAddress> apiOf(const ClusterView& cluster, const std::string& name,
                         const std::string& role) {
  const MemberInfo* m = cluster.member(name);
  if (!m)
    return invalid(fmt::format("{} {} has no member key", role, name));
  if (m->api_url.empty())
    return invalid(fmt::format("{} {} publishes no REST API address (api_url)", role, name));
  auto address = parseApiUrl(m->api_url);
  if (!address.ok())
    return address.error().wrap(fmt::format("{} {}", role, name));
  return address;
}

}  // namespace

Status checkScheduledTime(const std::string& text) {
  if (isIsoTimeWithZone(text))
    return okStatus();
  return invalid(
      fmt::format("invalid --scheduled \"{}\": give an ISO 8601 time with a zone, such as "
                  "2024-05-01T10:00+02:00, or now",
                  text));
}

Result<ActionPlan> planSwitchover(const std::string& scope, const ClusterView& cluster,
                                  const SwitchoverRequest& request) {
  if (!cluster.leader || cluster.leader->name.empty())
    return invalid("cluster has no leader: use failover");
  const std::string& leader = cluster.leader->name;
  if (!request.leader.empty() && request.leader != leader)
    return invalid(fmt::format("member {} is not the leader of cluster {}", request.leader, scope));
  if (!request.candidate.empty()) {
    if (auto st = checkCandidate(scope, cluster, request.candidate, leader, "switchover"); !st.ok())
      return st.error();
  } else {
    bool any = false;
    for (const auto& m : cluster.members)
      any = any || (m.name != leader && !m.tags.nofailover);
    if (!any)
      return invalid("no candidates found to switchover to");
  }
  const bool scheduled = !request.scheduled.empty() && request.scheduled != "now";
  if (scheduled) {
    if (auto st = checkScheduledTime(request.scheduled); !st.ok())
      return st.error();
    if (clusterPaused(cluster))
      return invalid("can't schedule a switchover in the paused state");
  }
  auto address = apiOf(cluster, leader, "leader");
  if (!address.ok())
    return address.error();

  ActionPlan plan{"switchover",
                  leader,
                  std::move(address).value(),
                  "/switchover",
                  json{{"leader", leader}},
                  ""};
  if (!request.candidate.empty())
    plan.body["candidate"] = request.candidate;
  if (scheduled)
    plan.body["scheduled_at"] = request.scheduled;
  const std::string to = request.candidate.empty() ? "" : " to " + request.candidate;
  plan.progress = scheduled ? fmt::format("scheduling a switchover from {}{} at {} ...", leader, to,
                                          request.scheduled)
                            : fmt::format("switching over from {}{} ...", leader, to);
  return plan;
}

Result<ActionPlan> planFailover(const std::string& scope, const ClusterView& cluster,
                                const std::string& candidate) {
  if (candidate.empty())
    return invalid("failover needs --candidate NAME");
  const std::string leader = cluster.leader ? cluster.leader->name : "";
  if (auto st = checkCandidate(scope, cluster, candidate, leader, "failover"); !st.ok())
    return st.error();

  ActionPlan plan{"failover",
                  candidate,
                  {},
                  "/failover",
                  json{{"candidate", candidate}},
                  fmt::format("failing over to {} ...", candidate)};
  if (!leader.empty())
    plan.body["leader"] = leader;
  // The leader's agent runs the failover when there is one that can be asked; without a leader,
  // the candidate's agent takes the request and promotes itself.
  if (auto address = apiOf(cluster, leader, "leader"); !leader.empty() && address.ok()) {
    plan.member = leader;
    plan.address = std::move(address).value();
    return plan;
  }
  auto address = apiOf(cluster, candidate, "candidate");
  if (!address.ok())
    return address.error();
  plan.address = std::move(address).value();
  return plan;
}

int runAction(const CtlTarget& target, Dcs& dcs, MemberApi& api, const ActionPlan& plan,
              OutputFormat format, std::ostream& out, std::ostream& err) {
  if (format == OutputFormat::kPretty)
    err << plan.progress << "\n" << std::flush;
  auto answer = callMemberApi(api, plan.address, target.api_credentials, "POST", plan.path,
                              plan.body.dump(), kLeaderChangeTimeout);
  if (!answer.ok()) {
    const Error& e = answer.error();
    return reportFailure(err, isUnreachable(e) ? e.wrap(plan.action + " failed") : e);
  }
  const std::string text = answerText(answer->body);
  if (answer->status != 200 && answer->status != 202)
    return reportFailure(
        err, invalid(fmt::format("{} failed: {} {}", plan.action, answer->status, text)));
  if (format == OutputFormat::kJson) {
    out << json{{"action", plan.action},
                {"member", plan.member},
                {"status", answer->status},
                {"message", text}}
               .dump(-1, ' ', false, json::error_handler_t::replace)
        << "\n";
    return 0;
  }
  out << text << "\n";
  // The change is done (or scheduled) whatever happens now: a failed read only costs the table.
  auto after = loadCluster(target, dcs);
  if (!after.ok())
    err << "pgfleetctl: warning: " << after.error().message << "\n";
  else
    out << formatMembersTable(target.scope, after.value());
  return 0;
}

int runSwitchover(const CtlTarget& target, Dcs& dcs, MemberApi& api,
                  const SwitchoverRequest& request, OutputFormat format, std::ostream& out,
                  std::ostream& err) {
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return reportFailure(err, cluster.error());
  auto plan = planSwitchover(target.scope, cluster.value(), request);
  if (!plan.ok())
    return reportFailure(err, plan.error());
  return runAction(target, dcs, api, plan.value(), format, out, err);
}

int runFailover(const CtlTarget& target, Dcs& dcs, MemberApi& api, const std::string& candidate,
                OutputFormat format, std::ostream& out, std::ostream& err) {
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return reportFailure(err, cluster.error());
  auto plan = planFailover(target.scope, cluster.value(), candidate);
  if (!plan.ok())
    return reportFailure(err, plan.error());
  return runAction(target, dcs, api, plan.value(), format, out, err);
}

}  // namespace pgf::ctl
