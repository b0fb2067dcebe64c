#include "common/error.h"

namespace pgf {

std::string_view errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kInvalidArgument:
      return "invalid-argument";
    case ErrorCode::kNotFound:
      return "not-found";
    case ErrorCode::kAlreadyExists:
      return "already-exists";
    case ErrorCode::kCompareFailed:
      return "compare-failed";
    case ErrorCode::kDcsUnavailable:
      return "dcs-unavailable";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kPostgresUnavailable:
      return "postgres-unavailable";
    case ErrorCode::kCommandFailed:
      return "command-failed";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kParse:
      return "parse";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kConfig:
      return "config";
  }
  return "unknown";
}

}  // namespace pgf
