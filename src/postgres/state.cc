#include "postgres/state.h"

namespace pgf {

std::string_view controlStateName(ControlState s) {
  switch (s) {
    case ControlState::kUnknown:
      return "unknown";
    case ControlState::kInProduction:
      return "in production";
    case ControlState::kShutDown:
      return "shut down";
    case ControlState::kInArchiveRecovery:
      return "in archive recovery";
    case ControlState::kShutDownInRecovery:
      return "shut down in recovery";
    case ControlState::kOther:
      return "other";
  }
  return "unknown";
}

}  // namespace pgf
