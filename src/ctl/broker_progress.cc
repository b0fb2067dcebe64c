#include "ctl/broker_progress.h"

#include <algorithm>
#include <charconv>
#include <ostream>

#include <fmt/format.h>

#include "common/http_message.h"

namespace pgf::ctl {
namespace {

// A Retry-After larger than this is taken as this: pgfleetctl keeps showing progress.
constexpr Millis kMaxPollInterval{60000};

std::string query(const std::string& operation, const std::string& service_id,
                  const std::string& plan_id) {
  std::string q;
  auto add = [&](const char* key, const std::string& value) {
    if (!value.empty())
      q += (q.empty() ? "?" : "&") + std::string(key) + "=" + percentEncode(value);
  };
  add("operation", operation);
  add("service_id", service_id);
  add("plan_id", plan_id);
  return q;
}

// "provisioning (the broker does not answer)", or the note alone before any description came.
std::string withNote(const std::string& description, const std::string& note) {
  return description.empty() ? note : description + " (" + note + ")";
}

// Shows progress lines: in place on a terminal, one per change elsewhere.
class ProgressLine {
 public:
  ProgressLine(const ProgressOptions& options, std::ostream& err, std::string instance_id)
      : options_(options), err_(err), instance_id_(std::move(instance_id)) {}

  void show(const std::string& description, Millis elapsed) {
    if (!options_.show)
      return;
    const std::string line =
        fmt::format("{}: {} ({} s)", instance_id_,
                    description.empty() ? "in progress" : description, elapsed.count() / 1000);
    if (options_.tty) {
      err_ << "\r\033[K" << line << std::flush;
      open_ = true;
    } else if (description != shown_ || !shown_once_) {
      err_ << line << "\n" << std::flush;
    }
    shown_ = description;
    shown_once_ = true;
  }

  // Ends the line rewritten in place, so that what follows starts on a line of its own.
  void finish() {
    if (open_)
      err_ << "\n" << std::flush;
    open_ = false;
  }

 private:
  const ProgressOptions& options_;
  std::ostream& err_;
  std::string instance_id_;
  std::string shown_;
  bool shown_once_ = false;
  bool open_ = false;
};

}  // namespace

std::optional<Millis> parseRetryAfter(const std::string& value) {
  const std::string_view text = trimHttpSpace(value);
  int seconds = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || seconds < 0)
    return std::nullopt;
  return Millis(static_cast<int64_t>(seconds) * 1000);
}

Result<OperationOutcome> waitForOperation(BrokerClient& broker, const std::string& instance_id,
                                          const std::string& operation,
                                          const std::string& service_id, const std::string& plan_id,
                                          const std::string& retry_after, const Sleeper& sleeper,
                                          const ProgressOptions& options, std::ostream& err) {
  const MonoTime start = sleeper.clock.now();
  const MonoTime deadline = start + options.timeout;
  const std::string path =
      instancePath(instance_id, "/last_operation") + query(operation, service_id, plan_id);
  ProgressLine progress(options, err, instance_id);
  OperationOutcome outcome;
  std::string next_retry_after = retry_after;
  while (true) {
    const Millis interval = std::min(
        parseRetryAfter(next_retry_after).value_or(kDefaultPollInterval), kMaxPollInterval);
    const MonoTime now = sleeper.clock.now();
    outcome.elapsed = std::chrono::duration_cast<Millis>(now - start);
    if (now >= deadline) {
      progress.finish();
      outcome.state = OperationOutcome::State::kTimedOut;
      return outcome;
    }
    sleeper.sleep(std::min(interval, std::chrono::duration_cast<Millis>(deadline - now)));
    outcome.elapsed = std::chrono::duration_cast<Millis>(sleeper.clock.now() - start);

    auto a = broker.call("GET", path);
    if (!a.ok()) {
      if (a.error().code == ErrorCode::kInvalidArgument) {  // credentials refused
        progress.finish();
        return a.error();
      }
      // Unreachable for a moment (a broker restarting): its operations resume, so keep asking.
      progress.show(withNote(outcome.description, "the broker does not answer"), outcome.elapsed);
      next_retry_after.clear();
      continue;
    }
    next_retry_after = a->retry_after;
    if (a->status == 410 && options.deprovision) {
      progress.finish();
      outcome.state = OperationOutcome::State::kGone;
      outcome.description = "the instance is gone";
      return outcome;
    }
    if (a->status >= 500) {
      progress.show(withNote(outcome.description, refusalText(*a)), outcome.elapsed);
      continue;
    }
    const std::string state = a->body.is_object() ? a->body.value("state", "") : "";
    if (a->status != 200 || state.empty()) {
      progress.finish();
      return refusal(fmt::format("polling the operation on instance {}", instance_id), *a);
    }
    outcome.description = a->body.value("description", "");
    if (state == "in progress") {
      progress.show(outcome.description, outcome.elapsed);
      continue;
    }
    progress.show(outcome.description, outcome.elapsed);
    progress.finish();
    if (state == "succeeded") {
      outcome.state = OperationOutcome::State::kSucceeded;
      return outcome;
    }
    outcome.state = OperationOutcome::State::kFailed;
    return outcome;
  }
}

}  // namespace pgf::ctl
