#include "ctl/broker_instance.h"

#include <ostream>

#include <fmt/format.h>

#include "common/http_message.h"
#include "ctl/broker_catalog.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

// What a verb does to an instance, in the words of its messages.
struct Action {
  const char* doing;  // "creating"
  const char* done;   // "created"
  bool deprovision;   // its operation ends with the instance gone (410)
};
constexpr Action kCreate{"creating", "created", false};
constexpr Action kUpdate{"updating", "updated", false};
constexpr Action kDelete{"deleting", "deleted", true};

const char* stateWord(OperationOutcome::State s) {
  switch (s) {
    case OperationOutcome::State::kSucceeded:
      return "succeeded";
    case OperationOutcome::State::kFailed:
      return "failed";
    case OperationOutcome::State::kGone:
      return "gone";
    case OperationOutcome::State::kTimedOut:
      return "in progress";
  }
  return "";
}

void printJson(std::ostream& out, const std::string& instance_id, const std::string& operation,
               const char* state, const std::string& description, Millis elapsed) {
  json doc = {{"instance_id", instance_id},
              {"operation", operation.empty() ? json(nullptr) : json(operation)},
              {"state", state},
              {"description", description},
              {"elapsed_seconds", static_cast<double>(elapsed.count()) / 1000.0}};
  out << doc.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
}

std::string seconds(Millis elapsed) {
  return fmt::format("{:.1f} s", static_cast<double>(elapsed.count()) / 1000.0);
}

// The end of a verb whose request the broker finished at once (200, 201) or knew as gone (410).
int finishedAtOnce(const Action& action, const std::string& instance_id, const char* state,
                   const std::string& message, const VerbOutput& output) {
  if (output.format == OutputFormat::kJson)
    printJson(output.out, instance_id, "", state, message, Millis(0));
  else
    output.out << fmt::format("instance {} {}: {}\n", instance_id, action.done, message);
  return 0;
}

// After the broker accepted an asynchronous request (202): follows the operation to its end,
// unless told not to wait, and reports it.
int follow(BrokerClient& broker, const Action& action, const std::string& instance_id,
           const BrokerAnswer& accepted, const std::string& service_id, const std::string& plan_id,
           const WaitOptions& wait, const Sleeper& sleeper, const VerbOutput& output) {
  const std::string operation =
      accepted.body.is_object() ? accepted.body.value("operation", "") : "";
  const bool pretty = output.format == OutputFormat::kPretty;
  if (!wait.wait) {
    if (pretty)
      output.out << fmt::format(
          "{} instance {}{}: follow it with pgfleetctl show {}\n", action.doing, instance_id,
          operation.empty() ? "" : " (operation " + operation + ")", instance_id);
    else
      printJson(output.out, instance_id, operation, "in progress", "", Millis(0));
    return 0;
  }
  ProgressOptions progress;
  progress.show = pretty;
  progress.tty = output.err_is_tty;
  progress.timeout = wait.timeout;
  progress.deprovision = action.deprovision;
  auto outcome = waitForOperation(broker, instance_id, operation, service_id, plan_id,
                                  accepted.retry_after, sleeper, progress, output.err);
  if (!outcome.ok())
    return reportFailure(output.err, outcome.error());
  using State = OperationOutcome::State;
  if (!pretty)
    printJson(output.out, instance_id, operation, stateWord(outcome->state), outcome->description,
              outcome->elapsed);
  switch (outcome->state) {
    case State::kSucceeded:
    case State::kGone:
      if (pretty)
        output.out << fmt::format("instance {} {} in {}{}\n", instance_id, action.done,
                                  seconds(outcome->elapsed),
                                  outcome->description.empty() || outcome->state == State::kGone
                                      ? ""
                                      : ": " + outcome->description);
      return 0;
    case State::kFailed:
      return reportFailure(
          output.err, makeError(ErrorCode::kCommandFailed,
                                fmt::format("{} instance {} failed: {}", action.doing, instance_id,
                                            outcome->description)));
    case State::kTimedOut:
      break;
  }
  output.err << fmt::format(
      "pgfleetctl: gave up waiting for instance {} after {}; the broker goes on {} it: follow it "
      "with pgfleetctl show {}\n",
      instance_id, seconds(outcome->elapsed), action.doing, instance_id);
  return kExitGaveUp;
}

}  // namespace

Result<json> parseParameters(const std::vector<std::string>& settings,
                             const std::string& parameters_json) {
  json params = json::object();
  if (!parameters_json.empty()) {
    params = json::parse(parameters_json, nullptr, false);
    if (params.is_discarded() || !params.is_object())
      return makeError(ErrorCode::kInvalidArgument,
                       "--parameters must be a JSON object, such as '{\"database\": \"shop\"}'");
  }
  for (const auto& s : settings) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return makeError(ErrorCode::kInvalidArgument,
                       fmt::format("invalid parameter {}: expected KEY=VALUE", json(s).dump()));
    const std::string value = s.substr(eq + 1);
    json parsed = json::parse(value, nullptr, false);
    params[s.substr(0, eq)] = parsed.is_discarded() ? json(value) : parsed;
  }
  return params;
}

int runCreate(BrokerClient& broker, const CreateRequest& request, const Sleeper& sleeper,
              const VerbOutput& output) {
  auto params = parseParameters(request.settings, request.parameters_json);
  if (!params.ok())
    return reportFailure(output.err, params.error());
  auto resolved = resolvePlan(broker, request.plan);
  if (!resolved.ok())
    return reportFailure(output.err, resolved.error());
  const std::string service_id = resolved->service_id;
  const std::string plan_id = resolved->plan.value("id", "");
  const json body = {{"service_id", service_id},
                     {"plan_id", plan_id},
                     {"organization_guid", request.organization_guid},
                     {"space_guid", request.space_guid},
                     {"context",
                      {{"platform", "pgfleetctl"},
                       {"organization_guid", request.organization_guid},
                       {"space_guid", request.space_guid},
                       {"instance_name", request.instance_id}}},
                     {"parameters", *params}};
  auto a = broker.call("PUT", instancePath(request.instance_id, "?accepts_incomplete=true"), body);
  if (!a.ok())
    return reportFailure(output.err, a.error());
  if (a->status == 202)
    return follow(broker, kCreate, request.instance_id, *a, service_id, plan_id, request.wait,
                  sleeper, output);
  if (a->status == 200 || a->status == 201)
    return finishedAtOnce(
        kCreate, request.instance_id, "succeeded",
        a->status == 200 ? "it already exists, with the same plan and parameters" : "ready",
        output);
  return reportFailure(output.err,
                       refusal(fmt::format("creating instance {}", request.instance_id), *a));
}

int runUpdate(BrokerClient& broker, const UpdateRequest& request, const Sleeper& sleeper,
              const VerbOutput& output) {
  auto params = parseParameters(request.settings, request.parameters_json);
  if (!params.ok())
    return reportFailure(output.err, params.error());
  if (request.plan.empty() && request.settings.empty() && request.parameters_json.empty())
    return reportFailure(output.err, makeError(ErrorCode::kInvalidArgument,
                                               "nothing to change: give --plan or parameters"));
  auto instance = broker.existingInstance(request.instance_id);
  if (!instance.ok())
    return reportFailure(output.err, instance.error());
  const std::string service_id = instance->value("service_id", "");
  const std::string current_plan = instance->value("plan_id", "");
  json body = {{"service_id", service_id}, {"previous_values", {{"plan_id", current_plan}}}};
  if (!request.plan.empty()) {
    auto resolved = resolvePlan(broker, request.plan);
    if (!resolved.ok())
      return reportFailure(output.err, resolved.error());
    body["plan_id"] = resolved->plan.value("id", "");
  }
  if (!request.settings.empty() || !request.parameters_json.empty())
    body["parameters"] = *params;
  auto a =
      broker.call("PATCH", instancePath(request.instance_id, "?accepts_incomplete=true"), body);
  if (!a.ok())
    return reportFailure(output.err, a.error());
  if (a->status == 202)
    return follow(broker, kUpdate, request.instance_id, *a, service_id, current_plan, request.wait,
                  sleeper, output);
  if (a->status == 200)
    return finishedAtOnce(kUpdate, request.instance_id, "succeeded", "done", output);
  return reportFailure(output.err,
                       refusal(fmt::format("updating instance {}", request.instance_id), *a));
}

int runDelete(BrokerClient& broker, const std::string& instance_id, const WaitOptions& wait,
              const Sleeper& sleeper, const VerbOutput& output) {
  auto found = broker.instance(instance_id);
  if (!found.ok())
    return reportFailure(output.err, found.error());
  if (!found->has_value())
    return finishedAtOnce(kDelete, instance_id, "gone", "it was already gone", output);
  const std::string service_id = (*found)->value("service_id", "");
  const std::string plan_id = (*found)->value("plan_id", "");
  auto a = broker.call("DELETE", instancePath(instance_id, fmt::format("?service_id={}&plan_id={}&"
                                                                       "accepts_incomplete=true",
                                                                       percentEncode(service_id),
                                                                       percentEncode(plan_id))));
  if (!a.ok())
    return reportFailure(output.err, a.error());
  if (a->status == 202)
    return follow(broker, kDelete, instance_id, *a, service_id, plan_id, wait, sleeper, output);
  if (a->status == 410)
    return finishedAtOnce(kDelete, instance_id, "gone", "it was already gone", output);
  if (a->status == 200)
    return finishedAtOnce(kDelete, instance_id, "gone", "done", output);
  return reportFailure(output.err, refusal(fmt::format("deleting instance {}", instance_id), *a));
}

}  // namespace pgf::ctl
