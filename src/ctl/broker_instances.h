// pgfleetctl instances and show: the broker's instances as its store has them, read from its own
// endpoints GET /pgfleet/v1/instances and /pgfleet/v1/instances/:id (src/broker/fleet_api.h),
// since the Open Service Broker API cannot list instances nor show one being provisioned.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ctl/broker_client.h"
#include "ctl/broker_instance.h"

namespace pgf::ctl {

// One row per instance: Instance, Plan, Nodes, State (the last operation and its state),
// Endpoint (host:read-write port, and the read-only port of a cluster), Created.
std::string formatInstancesTable(const nlohmann::json& instances);

// One instance in detail: plan, parameters, last operation with its steps, endpoints, nodes and
// bindings.
std::string formatInstance(const nlohmann::json& instance);

// Prints the list (pretty: the table, or "the broker has no instances"; json: the array of
// instances). 0 or 1.
int runInstances(BrokerClient& broker, const VerbOutput& output);
// Prints one instance (pretty: formatInstance; json: the broker's document). 1 when unknown.
int runShow(BrokerClient& broker, const std::string& instance_id, const VerbOutput& output);

// One row per pool (GET /pgfleet/v1/pools): Plan, Strategy, Size, Ready, Building, Claims,
// Misses, Failures.
std::string formatPoolsTable(const nlohmann::json& pools);
// Prints the pools (pretty: the table, or "no plan has a pool"; json: the array). 0 or 1.
int runPools(BrokerClient& broker, const VerbOutput& output);

}  // namespace pgf::ctl
