// Waiting for an asynchronous broker operation (provision, update, deprovision) to end: polls
// GET /v2/service_instances/:id/last_operation until it says succeeded or failed (or, for a
// deprovision, 410 Gone), and shows the operator how it goes.
//
// Polling: every kDefaultPollInterval, or after the broker's Retry-After (seconds) when it sends
// one; never past the deadline. Progress (only when `show` is set, i.e. in pretty mode) goes to
// `err`: on a terminal one line rewritten in place ("mydb: provisioning: nodes started (4 s)"),
// elsewhere one line each time the description changes. A failed poll (no answer, a 5xx) is
// tried again until the deadline; an answer that cannot be a state (a 404, a 410 while creating)
// ends the wait with an error.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "ctl/broker_client.h"
#include "ctl/ctl_context.h"

namespace pgf::ctl {

// How often last_operation is asked when the broker does not say (OSB lets it send Retry-After).
inline constexpr Millis kDefaultPollInterval{500};

struct ProgressOptions {
  bool show = true;          // print progress on `err`
  bool tty = false;          // `err` is a terminal: rewrite one line
  Millis timeout{1800000};   // give up after this long
  bool deprovision = false;  // 410 Gone means done
};

struct OperationOutcome {
  enum class State { kSucceeded, kFailed, kGone, kTimedOut };
  State state = State::kSucceeded;
  std::string description;  // the broker's last description
  Millis elapsed{0};
};

// `operation` is the token of the broker's 202 answer ("" when it gave none); `retry_after` its
// Retry-After header. `service_id` and `plan_id` are sent as OSB's hints when not empty.
Result<OperationOutcome> waitForOperation(BrokerClient& broker, const std::string& instance_id,
                                          const std::string& operation,
                                          const std::string& service_id, const std::string& plan_id,
                                          const std::string& retry_after, const Sleeper& sleeper,
                                          const ProgressOptions& options, std::ostream& err);

// A Retry-After value in seconds ("3"); nullopt for anything else (an HTTP date is not used).
std::optional<Millis> parseRetryAfter(const std::string& value);

}  // namespace pgf::ctl
