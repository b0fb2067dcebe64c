// pgfleetctl bind and unbind: a binding is a PostgreSQL role of its own on the instance, with
// credentials for the instance's stable endpoint (docs/broker.md). Both are synchronous at this
// broker (201/200 for bind, 200 for unbind, 410 for an unknown binding).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ctl/broker_client.h"
#include "ctl/broker_instance.h"

namespace pgf::ctl {

// The credentials as "key: value" lines, keys sorted, values of objects and arrays as JSON.
std::string formatCredentials(const nlohmann::json& credentials);

// Prints the credentials (pretty) or the broker's answer as it came (json). 0 or 1.
int runBind(BrokerClient& broker, const std::string& instance_id, const std::string& binding_id,
            const VerbOutput& output);
// 0 when the binding is gone, also when it already was (410); 1 otherwise.
int runUnbind(BrokerClient& broker, const std::string& instance_id, const std::string& binding_id,
              const VerbOutput& output);

}  // namespace pgf::ctl
