#include "ha/decision.h"

namespace pgf {

std::string_view actionName(Action a) {
  switch (a) {
    case Action::kNone:
      return "none";
    case Action::kBootstrap:
      return "bootstrap";
    case Action::kClone:
      return "clone";
    case Action::kStartReplica:
      return "start_replica";
    case Action::kFollow:
      return "follow";
    case Action::kRenewLease:
      return "renew_lease";
    case Action::kAcquireAndPromote:
      return "acquire_and_promote";
    case Action::kDemote:
      return "demote";
    case Action::kRewind:
      return "rewind";
    case Action::kStartPrimary:
      return "start_primary";
    case Action::kAcquireLease:
      return "acquire_lease";
    case Action::kReclone:
      return "reclone";
    case Action::kSwitchover:
      return "switchover";
    case Action::kReleaseLeader:
      return "release_leader";
  }
  return "unknown";
}

}  // namespace pgf
