// `pgfleetctl restart` and `pgfleetctl reload`: restart PostgreSQL on some or all members, or make
// their agents rewrite and reload its configuration, through each member's REST API (POST /restart,
// POST /reload), as patronictl does.
//
//   restart: rolling, one member at a time: the replicas in name order, then the leader, each
//            request answered (PostgreSQL running again) before the next one is sent. The first
//            failure ends the roll, so the leader is never restarted after a replica failed. The
//            conditions (--role, --pending) travel in the body and each agent judges them: its
//            412 means "skipped", not a failure.
//   reload:  every member in name order; a failure does not stop the others.
//
// Planning (which members, in which order, what body) and reading the answers are pure and
// unit-tested; run*() do the DCS read and the HTTP requests. Never: send a request twice, go on
// after a failed restart, or prompt (--force is accepted for patronictl compatibility and changes
// nothing).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctl/ctl_context.h"
#include "ctl/rest_client.h"
#include "dcs/cluster_view.h"

namespace pgf::ctl {

// How long one POST /restart may take to answer: the agent waits up to 110 s (kRestartWait) for
// PostgreSQL to stop and start again before it answers, and the answer needs a margin on top.
inline constexpr Millis kRestartTimeout{130000};
// How long one POST /reload may take: the agent waits up to 30 s for its loop to rewrite the
// configuration and signal PostgreSQL.
inline constexpr Millis kReloadTimeout{40000};

// --role: which role a member's PostgreSQL must have for the agent to restart it.
enum class RestartRole { kAny, kPrimary, kReplica };

// "any", "primary", "replica", and "master" (patronictl's older name for primary); an error
// (kInvalidArgument) for anything else.
Result<RestartRole> parseRestartRole(const std::string& text);

struct RestartRequest {
  std::vector<std::string> members;      // none: every member that publishes an api_url
  RestartRole role = RestartRole::kAny;  // --role
  bool pending = false;                  // --pending: only if PostgreSQL needs a restart
  // --scheduled: an ISO 8601 time with a zone at which each agent restarts (judging the
  // conditions then); "" or "now": at once.
  std::string scheduled;
  Millis timeout = kRestartTimeout;  // for each POST /restart
};

// A member whose REST API gets a request.
struct MemberTarget {
  std::string member;
  std::string role;  // "leader" or "replica", for messages and the JSON output
  ApiAddress address;
};

struct MemberPlan {
  std::vector<MemberTarget> targets;
  // Members left out because they publish no api_url (only when no member was named).
  std::vector<std::string> left_out;
};

// The members to ask, in name order (a name given twice counts once). Without `names`, every
// member with an api_url; a named member must exist ("member n9 does not exist in cluster demo")
// and publish an api_url ("member n4 publishes no REST API address (api_url)"). An api_url that
// parseApiUrl refuses is an error either way, as is an empty plan. The leader is the member
// holding the leader key; without one, any member that publishes the primary role.
Result<MemberPlan> planMembers(const std::string& scope, const ClusterView& cluster,
                               const std::vector<std::string>& names);

// Whether `member` counts as the leader: it holds the leader key; without one, it publishes the
// primary role.
bool isLeader(const ClusterView& cluster, const MemberInfo& member);

// The order of a rolling restart: the replicas in name order, then the leader.
std::vector<MemberTarget> rollingOrder(std::vector<MemberTarget> targets);

// The POST /restart body: {} with "role" ("primary" or "replica") unless --role any,
// "restart_pending": true with --pending, and "schedule" with --scheduled (other than "now").
nlohmann::json restartBody(const RestartRequest& request);

enum class Outcome { kDone, kSkipped, kFailed, kNotTried };

struct MemberOutcome {
  std::string member;
  std::string role;
  Outcome outcome = Outcome::kNotTried;
  std::optional<int> status;  // the HTTP status; none when no answer came (or none was asked)
  std::string message;        // the answer's text, the transport error, or "not tried"
};

// A member's answer (or the transport error) as an outcome: kFailed with the status and text;
// the caller decides which statuses mean done or skipped.
MemberOutcome answered(const MemberTarget& target, const Result<ApiAnswer>& answer);

// What an answer to POST /restart means: 200 done, 202 done (scheduled), 412 skipped (a condition
// does not hold), anything else, or no answer, failed.
MemberOutcome restartOutcome(const MemberTarget& target, const Result<ApiAnswer>& answer);
// What an answer to POST /reload means: 200 or 202 done, anything else failed.
MemberOutcome reloadOutcome(const MemberTarget& target, const Result<ApiAnswer>& answer);

// One line for a person: "n2: restarted successfully", "n3: skipped: restart conditions are not
// satisfied", "n3: failed: 503 restart failed: ...", "n1: not tried".
std::string outcomeLine(const MemberOutcome& outcome);
// [{"member", "role", "status", "message"}, ...]; "status" is null when no answer came.
nlohmann::json outcomesJson(const std::vector<MemberOutcome>& outcomes);

// When a verb that stops at the first failure (restart, reinit) met one, what it says:
// "<verb> failed on n3: 503 restart failed: ...; not tried: n1, n2" (the "not tried" part only
// when some were not); none when no member failed.
std::optional<std::string> firstFailure(const std::string& verb,
                                        const std::vector<MemberOutcome>& outcomes);

// The rolling restart. stdout gets one line per member (pretty, each as soon as it is known) or
// the JSON array; in pretty mode stderr gets "restarting n2 (replica) ..." before each request.
// Exit 0 when every member restarted or was skipped; else 1 with the one line "pgfleetctl:
// restart failed on n3: <answer>; not tried: n1" on stderr (after the output).
int runRestart(const CtlTarget& target, Dcs& dcs, MemberApi& api, const RestartRequest& request,
               OutputFormat format, std::ostream& out, std::ostream& err);

// POST /reload to each member in name order, each asked whatever the others answered; output as
// runRestart's (progress "reloading n2 (replica) ..."). Exit 1 with "pgfleetctl: reload failed on
// n2, n3" when any failed.
int runReload(const CtlTarget& target, Dcs& dcs, MemberApi& api,
              const std::vector<std::string>& members, Millis timeout, OutputFormat format,
              std::ostream& out, std::ostream& err);

}  // namespace pgf::ctl
