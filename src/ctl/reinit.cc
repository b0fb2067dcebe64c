#include "ctl/reinit.h"

#include <algorithm>
#include <ostream>

#include <fmt/format.h>

namespace pgf::ctl {
namespace {

using nlohmann::json;

Error invalid(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, std::move(message));
}

}  // namespace

// The checks run member by member in the order given, so that the message names the first name
// that is wrong. The REST API address is checked last, by planMembers, which also parses it; its
// name order does not matter because the targets are put back into the order given.
Result<std::vector<MemberTarget>> planReinit(const std::string& scope, const ClusterView& cluster,
                                             const std::vector<std::string>& names) {
  if (names.empty())
    return invalid("name the members to reinitialize");
  std::vector<std::string> ordered;
  for (const auto& name : names)
    if (std::find(ordered.begin(), ordered.end(), name) == ordered.end())
      ordered.push_back(name);
  for (const auto& name : ordered) {
    const MemberInfo* member = cluster.member(name);
    if (!member)
      return invalid(fmt::format("member {} does not exist in cluster {}", name, scope));
    if (isLeader(cluster, *member))
      return invalid(fmt::format("{} is the leader: switch over first", name));
  }
  auto plan = planMembers(scope, cluster, ordered);
  if (!plan.ok())
    return plan.error();

  std::vector<MemberTarget> targets;
  for (const auto& name : ordered)
    for (const auto& t : plan->targets)
      if (t.member == name)
        targets.push_back(t);
  return targets;
}

json reinitBody(const ReinitRequest& request) {
  json body = json::object();
  if (request.force)
    body["force"] = true;
  return body;
}

MemberOutcome reinitOutcome(const MemberTarget& target, const Result<ApiAnswer>& answer) {
  MemberOutcome o = answered(target, answer);
  if (o.status == 200) {
    o.outcome = Outcome::kDone;
    if (o.message.empty())
      o.message = "reinitialized";
  }
  return o;
}

json reinitOutcomesJson(const std::vector<MemberOutcome>& outcomes) {
  json array = json::array();
  for (const auto& o : outcomes)
    array.push_back({{"member", o.member},
                     {"status", o.status ? json(*o.status) : json(nullptr)},
                     {"message", o.message}});
  return array;
}

int runReinit(const CtlTarget& target, Dcs& dcs, MemberApi& api, const ReinitRequest& request,
              OutputFormat format, std::ostream& out, std::ostream& err) {
  // Without a member there is nothing to read etcd for.
  if (request.members.empty())
    return reportFailure(err, planReinit(target.scope, {}, {}).error());
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return reportFailure(err, cluster.error());
  auto targets = planReinit(target.scope, cluster.value(), request.members);
  if (!targets.ok())
    return reportFailure(err, targets.error());

  // Each line is printed as soon as it is known: a member can take minutes.
  const std::string body = reinitBody(request).dump();
  std::vector<MemberOutcome> outcomes;
  bool stopped = false;
  for (const auto& t : targets.value()) {
    if (stopped) {
      outcomes.push_back({t.member, t.role, Outcome::kNotTried, std::nullopt, "not tried"});
    } else {
      if (format == OutputFormat::kPretty)
        err << fmt::format("reinitializing {} from the leader ...\n", t.member) << std::flush;
      auto answer = callMemberApi(api, t.address, target.api_credentials, "POST", "/reinitialize",
                                  body, request.timeout);
      outcomes.push_back(reinitOutcome(t, answer));
      stopped = outcomes.back().outcome == Outcome::kFailed;
    }
    if (format == OutputFormat::kPretty)
      out << outcomeLine(outcomes.back()) << "\n" << std::flush;
  }
  if (format == OutputFormat::kJson)
    out << reinitOutcomesJson(outcomes).dump(-1, ' ', false, json::error_handler_t::replace)
        << "\n";

  const auto failure = firstFailure("reinit", outcomes);
  return failure ? reportFailure(err, invalid(*failure)) : 0;
}

}  // namespace pgf::ctl
