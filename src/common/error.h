// Error codes and the Error value every fallible pgfleet call returns.
//
// ErrorCode values are stable: docs/ and the HTTP status mapping cite them, so a code is never
// renumbered or reused. Messages are lowercase, without a final period, and gain context as they
// travel up ("renewing leader lease: etcd txn: timeout").
#pragma once

#include <string>
#include <string_view>

namespace pgf {

enum class ErrorCode : int {
  kInternal = 1,         // a bug: an invariant of our own code did not hold
  kInvalidArgument = 2,  // the caller (user, config, request) gave something wrong
  kNotFound = 3,
  kAlreadyExists = 4,
  kCompareFailed = 5,   // a compare-and-set lost its race
  kDcsUnavailable = 6,  // no etcd endpoint answered in time: feeds the demotion path
  kTimeout = 7,
  kPostgresUnavailable = 8,  // could not connect to or query PostgreSQL
  kCommandFailed = 9,        // an external program (initdb, pg_ctl, ...) failed
  kIo = 10,                  // a local file or socket operation failed
  kParse = 11,               // malformed input (JSON, YAML, LSN, ...)
  kUnsupported = 12,
  kConfig = 13,  // an invalid configuration value
};

std::string_view errorCodeName(ErrorCode code);

struct [[nodiscard]] Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  bool retryable = false;

  // Returns a copy whose message is prefixed with `context`: "context: message".
  Error wrap(std::string_view context) const {
    Error e = *this;
    e.message = std::string(context) + ": " + message;
    return e;
  }
  std::string toString() const { return std::string(errorCodeName(code)) + ": " + message; }
};

inline Error makeError(ErrorCode code, std::string message, bool retryable = false) {
  return Error{code, std::move(message), retryable};
}

}  // namespace pgf
