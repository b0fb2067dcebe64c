// The JSON this agent writes to members/<name>, shaped as Patroni 3.0.2 writes it so that
// patronictl and Patroni-aware tools read pgfleet members as their own.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "dcs/cluster_view.h"
#include "postgres/state.h"

namespace pgf {

struct MemberIdentity {
  std::string conn_url;  // postgres://host:port/postgres
  std::string api_url;   // http://host:port/patroni
  std::string version;
  MemberTags tags;
};

// "master" while running as a primary, "replica" otherwise, "uninitialized" without data.
std::string memberRole(const LocalPostgres& pg);
// "running", "stopped", "crashed" (it last ran and was not shut down), or `activity` while an
// action such as "creating replica" or "starting" is under way.
std::string memberState(const LocalPostgres& pg, const std::string& activity);

nlohmann::json buildMemberData(const MemberIdentity& id, const LocalPostgres& pg,
                               const std::string& activity);
nlohmann::json tagsToJson(const MemberTags& tags);

}  // namespace pgf
