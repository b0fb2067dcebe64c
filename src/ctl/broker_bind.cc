#include "ctl/broker_bind.h"

#include <ostream>

#include <fmt/format.h>

#include "common/http_message.h"
#include "ctl/table.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

std::string bindingPath(const std::string& instance_id, const std::string& binding_id,
                        const std::string& query = "") {
  return instancePath(instance_id, "/service_bindings/" + percentEncode(binding_id) + query);
}

// service_id and plan_id, which OSB requires on bind and unbind, from the broker's store.
Result<std::pair<std::string, std::string>> idsOf(BrokerClient& broker,
                                                  const std::string& instance_id) {
  auto found = broker.existingInstance(instance_id);
  if (!found.ok())
    return found.error();
  return std::make_pair(found->value("service_id", ""), found->value("plan_id", ""));
}

}  // namespace

std::string formatCredentials(const json& credentials) {
  std::vector<std::pair<std::string, std::string>> fields;
  if (credentials.is_object())
    for (const auto& [key, value] : credentials.items())  // nlohmann's objects keep keys sorted
      fields.emplace_back(key, cellText(value));
  return renderFields(fields);
}

int runBind(BrokerClient& broker, const std::string& instance_id, const std::string& binding_id,
            const VerbOutput& output) {
  auto ids = idsOf(broker, instance_id);
  if (!ids.ok())
    return reportFailure(output.err, ids.error());
  const json body = {{"service_id", ids->first},
                     {"plan_id", ids->second},
                     {"context", {{"platform", "pgfleetctl"}}},
                     {"bind_resource", json::object()}};
  auto a = broker.call("PUT", bindingPath(instance_id, binding_id), body);
  if (!a.ok())
    return reportFailure(output.err, a.error());
  if ((a->status != 200 && a->status != 201) || !a->body.is_object())
    return reportFailure(
        output.err, refusal(fmt::format("binding {} to instance {}", binding_id, instance_id), *a));
  if (output.format == OutputFormat::kJson) {
    output.out << a->body.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (a->status == 200)
    output.err << fmt::format("binding {} already existed: its credentials are unchanged\n",
                              binding_id);
  output.out << formatCredentials(a->body.value("credentials", json::object()));
  return 0;
}

int runUnbind(BrokerClient& broker, const std::string& instance_id, const std::string& binding_id,
              const VerbOutput& output) {
  auto ids = idsOf(broker, instance_id);
  if (!ids.ok())
    return reportFailure(output.err, ids.error());
  auto a = broker.call(
      "DELETE", bindingPath(instance_id, binding_id,
                            fmt::format("?service_id={}&plan_id={}", percentEncode(ids->first),
                                        percentEncode(ids->second))));
  if (!a.ok())
    return reportFailure(output.err, a.error());
  if (a->status != 200 && a->status != 410)
    return reportFailure(
        output.err,
        refusal(fmt::format("unbinding {} from instance {}", binding_id, instance_id), *a));
  const bool gone = a->status == 410;
  if (output.format == OutputFormat::kJson)
    output.out << json{{"instance_id", instance_id},
                       {"binding_id", binding_id},
                       {"state", gone ? "gone" : "succeeded"}}
                      .dump()
               << "\n";
  else
    output.out << fmt::format("binding {} of instance {} {}\n", binding_id, instance_id,
                              gone ? "was already gone" : "removed: its role is dropped");
  return 0;
}

}  // namespace pgf::ctl
