#include "deploy/manifest.h"

#include <set>

#include <fmt/format.h>

#include "common/yaml_reader.h"

namespace pgf {
namespace {

bool validNodeName(const std::string& name) {
  if (name.empty() || name.size() > 63 || name.front() == '-')
    return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  return true;
}

Result<int> readPort(const YAML::Node& parent, const char* key, const std::string& path) {
  std::string where = yaml::joinPath(path, key);
  auto node = yaml::child(parent, key);
  if (!yaml::isSet(node))
    return yaml::configError(where, "is required");
  auto value = yaml::readInt(node, where);
  if (!value.ok())
    return value.error();
  if (*value < 1 || *value > 65535)
    return yaml::configError(where, fmt::format("{} is not a port (1-65535)", *value));
  return static_cast<int>(*value);
}

}  // namespace

Result<DeploymentManifest> parseManifest(const std::string& yaml_text) {
  auto doc = yaml::parseDocument(yaml_text);
  if (!doc.ok())
    return doc.error().wrap("manifest");
  PGF_RETURN_IF_ERROR(yaml::expectMap(*doc, "manifest"));
  DeploymentManifest m;
  std::set<std::string> names;
  std::set<int> ports;
  auto takePort = [&](int port, const std::string& path) -> Status {
    if (!ports.insert(port).second)
      return yaml::configError(path, fmt::format("port {} is used twice", port));
    return okStatus();
  };

  auto nodes = yaml::child(*doc, "nodes");
  if (!nodes.IsSequence() || nodes.size() == 0 || nodes.size() > 9)
    return yaml::configError("nodes", "must be a list of 1 to 9 nodes");
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string path = fmt::format("nodes[{}]", i);
    const YAML::Node n = nodes[i];
    PGF_RETURN_IF_ERROR(yaml::expectMap(n, path));
    NodeManifest node;
    auto name = yaml::readString(yaml::child(n, "name"), path + ".name");
    if (!name.ok())
      return name.error();
    if (!validNodeName(*name))
      return yaml::configError(path + ".name",
                               "must be 1 to 63 of a-z, 0-9 and -, not starting with -");
    if (!names.insert(*name).second)
      return yaml::configError(path + ".name", "\"" + *name + "\" is used twice");
    node.name = *name;
    auto pg = readPort(n, "pg_port", path);
    if (!pg.ok())
      return pg.error();
    PGF_RETURN_IF_ERROR(takePort(*pg, path + ".pg_port"));
    node.pg_port = *pg;
    auto api = readPort(n, "api_port", path);
    if (!api.ok())
      return api.error();
    PGF_RETURN_IF_ERROR(takePort(*api, path + ".api_port"));
    node.api_port = *api;
    auto agent = yaml::readString(yaml::child(n, "agent"), path + ".agent");
    if (!agent.ok())
      return agent.error();
    auto agent_doc = yaml::parseDocument(*agent);
    if (!agent_doc.ok())
      return agent_doc.error().wrap(path + ".agent");
    if (!agent_doc->IsMap())
      return yaml::configError(path + ".agent", "must be the agent's YAML configuration");
    node.agent_config = *agent;
    m.nodes.push_back(std::move(node));
  }

  auto endpoints = yaml::child(*doc, "endpoints");
  PGF_RETURN_IF_ERROR(yaml::expectMap(endpoints, "endpoints"));
  auto rw = readPort(endpoints, "read_write", "endpoints");
  if (!rw.ok())
    return rw.error();
  PGF_RETURN_IF_ERROR(takePort(*rw, "endpoints.read_write"));
  m.read_write_port = *rw;
  if (yaml::isSet(yaml::child(endpoints, "read_only"))) {
    auto ro = readPort(endpoints, "read_only", "endpoints");
    if (!ro.ok())
      return ro.error();
    PGF_RETURN_IF_ERROR(takePort(*ro, "endpoints.read_only"));
    m.read_only_port = *ro;
  }
  return m;
}

}  // namespace pgf
