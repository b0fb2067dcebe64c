// pgfleetctl create, update and delete: one OSB request each (PUT, PATCH, DELETE on
// /v2/service_instances/:id with accepts_incomplete=true), then, unless told not to wait, the
// operation followed to its end with a progress display (broker_progress.h).
//
// Exit codes: 0 done (or, with --no-wait, accepted); 1 refused, failed or unreachable, with one
// line on stderr; kExitGaveUp when the wait timed out (the operation goes on in the broker).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "ctl/broker_client.h"
#include "ctl/broker_progress.h"
#include "ctl/ctl_context.h"

namespace pgf::ctl {

inline constexpr int kExitGaveUp = 2;

// Where a broker verb writes: stdout for the result, stderr for progress and failures.
struct VerbOutput {
  OutputFormat format = OutputFormat::kPretty;
  std::ostream& out;
  std::ostream& err;
  bool err_is_tty = false;
};

// The parameters of create and update: the object `--parameters JSON`, then each `-p KEY=VALUE`
// (VALUE as JSON when it parses as JSON, such as 10, true or ["a","b"], else as a string).
// Errors (kInvalidArgument): `--parameters` not a JSON object, a setting without "=" or key.
Result<nlohmann::json> parseParameters(const std::vector<std::string>& settings,
                                       const std::string& parameters_json);

struct WaitOptions {
  bool wait = true;  // false: --no-wait
  Millis timeout{1800000};
};

struct CreateRequest {
  std::string instance_id;
  std::string plan;  // a name or an id
  std::vector<std::string> settings;
  std::string parameters_json;
  std::string organization_guid = "pgfleetctl";
  std::string space_guid = "pgfleetctl";
  WaitOptions wait;
};

struct UpdateRequest {
  std::string instance_id;
  std::string plan;  // "" keeps the plan
  std::vector<std::string> settings;
  std::string parameters_json;
  WaitOptions wait;
};

int runCreate(BrokerClient& broker, const CreateRequest& request, const Sleeper& sleeper,
              const VerbOutput& output);
int runUpdate(BrokerClient& broker, const UpdateRequest& request, const Sleeper& sleeper,
              const VerbOutput& output);
// A 410 (the broker does not know the instance) is success: "instance x is already gone".
int runDelete(BrokerClient& broker, const std::string& instance_id, const WaitOptions& wait,
              const Sleeper& sleeper, const VerbOutput& output);

}  // namespace pgf::ctl
