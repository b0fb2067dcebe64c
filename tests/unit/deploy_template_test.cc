#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "deploy/local_backend.h"
#include "deploy/manifest.h"
#include "deploy/template.h"

namespace pgf {
namespace {

TEST(DeployTemplate, ValuesAreWordsOrQuotedStringsNeverNewKeys) {
  EXPECT_EQ(yamlScalar("node-1"), "node-1");
  EXPECT_EQ(yamlScalar("127.0.0.1:5432"), "127.0.0.1:5432");
  EXPECT_EQ(yamlScalar("Ab3xYz"), "Ab3xYz");
  EXPECT_EQ(yamlScalar(""), "\"\"");
  EXPECT_EQ(yamlScalar("-x"), "\"-x\"");
  EXPECT_EQ(yamlScalar("a b"), "\"a b\"");
  EXPECT_EQ(yamlScalar("x\nevil: true"), "\"x\\nevil: true\"");

  auto out = renderTemplate("key: {{v}}\nraw: {{{v}}}\n", {{"v", "x\nevil: 1"}});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, "key: \"x\\nevil: 1\"\nraw: x\nevil: 1\n");
}

TEST(DeployTemplate, SectionsIterateListsAndSeeTheOuterValues) {
  nlohmann::json ctx = {{"scope", "i1"},
                        {"port", 5432},
                        {"nodes", {{{"name", "n0"}}, {{"name", "n1"}}}},
                        {"absent", nullptr}};
  auto out = renderTemplate(
      "{{#nodes}}\n- {{name}} of {{scope}} on {{port}}\n{{/nodes}}\n{{#absent}}\nnever\n"
      "{{/absent}}\nend\n",
      ctx);
  ASSERT_TRUE(out.ok()) << out.error().message;
  // A false section may leave an empty line behind (YAML does not mind); the lines that count:
  std::string lines;
  for (size_t start = 0; start < out->size();) {
    size_t end = out->find('\n', start);
    std::string line = out->substr(start, end - start);
    if (!line.empty())
      lines += line + "\n";
    start = end == std::string::npos ? out->size() : end + 1;
  }
  EXPECT_EQ(lines, "- n0 of i1 on 5432\n- n1 of i1 on 5432\nend\n");
}

TEST(DeployTemplate, AMalformedTemplateIsAClearError) {
  EXPECT_FALSE(checkTemplate("{{#nodes}} unclosed").ok());
  auto out = renderTemplate("{{#a}}x{{/b}}", nlohmann::json::object());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("template:"), std::string::npos) << out.error().message;
  EXPECT_TRUE(checkTemplate("plain {{x}}").ok());
}

nlohmann::json exampleContext(int nodes) {
  nlohmann::json ctx = {{"scope", "pgf-abc123"},
                        {"etcd_hosts", "127.0.0.1:2379"},
                        {"bin_dir", "/usr/lib/postgresql/15/bin"},
                        {"ttl", 30},
                        {"loop_wait", 10},
                        {"retry_timeout", 10},
                        {"synchronous_mode", "true"},
                        {"superuser_password", "S3cretSuperuserPasswordAbcdefgh1"},
                        {"replication_password", "R3plPasswordAbcdefghijklmnopqrst"},
                        {"rewind_password", "R3windPasswordAbcdefghijklmnopqr"},
                        {"parameters",
                         {{{"name", "shared_buffers"}, {"value", "128MB"}},
                          {{"name", "max_connections"}, {"value", "100"}}}},
                        {"read_write_port", 21000},
                        {"read_only_port", nodes > 1 ? nlohmann::json(21001) : nullptr}};
  nlohmann::json list = nlohmann::json::array();
  for (int i = 0; i < nodes; ++i)
    list.push_back({{"name", "node" + std::to_string(i)},
                    {"pg_port", 21010 + 2 * i},
                    {"api_port", 21011 + 2 * i},
                    {"dir", "/var/lib/pgfleet/instances/pgf-abc123/node" + std::to_string(i)}});
  ctx["nodes"] = list;
  return ctx;
}

std::string exampleTemplate() {
  std::ifstream in(std::string(PGFLEET_SOURCE_DIR) +
                   "/examples/templates/postgresql.yaml.mustache");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DeployTemplate, TheShippedTemplateRendersAManifestOfValidAgentConfigurations) {
  const std::string tmpl = exampleTemplate();
  ASSERT_FALSE(tmpl.empty());
  for (int nodes : {1, 3}) {
    auto rendered = renderTemplate(tmpl, exampleContext(nodes));
    ASSERT_TRUE(rendered.ok()) << rendered.error().message;
    auto m = parseManifest(*rendered);
    ASSERT_TRUE(m.ok()) << m.error().message << "\n" << *rendered;
    ASSERT_EQ(m->nodes.size(), static_cast<size_t>(nodes));
    EXPECT_EQ(m->read_write_port, 21000);
    EXPECT_EQ(m->read_only_port, nodes > 1 ? 21001 : 0);
    for (int i = 0; i < nodes; ++i) {
      const auto& node = m->nodes[i];
      EXPECT_EQ(node.name, "node" + std::to_string(i));
      EXPECT_EQ(node.pg_port, 21010 + 2 * i);
      auto agent = parseAgentConfig(node.agent_config);
      ASSERT_TRUE(agent.ok()) << agent.error().message << "\n" << node.agent_config;
      EXPECT_TRUE(agent->warnings.empty()) << agent->warnings.front();
      EXPECT_EQ(agent->config.scope, "pgf-abc123");
      EXPECT_EQ(agent->config.name, node.name);
      EXPECT_TRUE(agent->config.bootstrap_dcs.synchronous_mode);
      EXPECT_EQ(agent->config.postgresql.data_dir,
                "/var/lib/pgfleet/instances/pgf-abc123/node" + std::to_string(i) + "/data");
      EXPECT_EQ(agent->config.bootstrap_dcs_raw["postgresql"]["parameters"]["shared_buffers"],
                "128MB");
    }
  }
}

TEST(DeployManifest, RejectsWhatCannotRunNamingTheKey) {
  auto error = [](const std::string& text) {
    auto m = parseManifest(text);
    return m.ok() ? std::string("accepted") : m.error().message;
  };
  const std::string agent = "    agent: |\n      scope: a\n";
  EXPECT_NE(error("nodes: []\nendpoints: {read_write: 1}\n").find("nodes"), std::string::npos);
  EXPECT_NE(error("nodes:\n  - name: Node_1\n    pg_port: 10\n    api_port: 11\n" + agent +
                  "endpoints: {read_write: 12}\n")
                .find("nodes[0].name"),
            std::string::npos);
  EXPECT_NE(error("nodes:\n  - name: n\n    pg_port: 10\n    api_port: 10\n" + agent +
                  "endpoints: {read_write: 12}\n")
                .find("nodes[0].api_port: port 10 is used twice"),
            std::string::npos);
  EXPECT_NE(error("nodes:\n  - name: n\n    pg_port: 70000\n    api_port: 11\n" + agent +
                  "endpoints: {read_write: 12}\n")
                .find("nodes[0].pg_port"),
            std::string::npos);
  EXPECT_NE(error("nodes:\n  - name: n\n    pg_port: 10\n    api_port: 11\n" + agent)
                .find("endpoints.read_write: is required"),
            std::string::npos);
  EXPECT_NE(error("nodes:\n  - name: n\n    pg_port: 10\n    api_port: 11\n    agent: plain\n"
                  "endpoints: {read_write: 12}\n")
                .find("nodes[0].agent"),
            std::string::npos);
  EXPECT_EQ(error("nodes:\n  - name: n\n    pg_port: 10\n    api_port: 11\n" + agent +
                  "endpoints: {read_write: 12}\n"),
            "accepted");
}

TEST(DeployHaproxy, ReadWriteToThePrimaryReadOnlyToReplicasSessionsCutOnDemotion) {
  DeploymentManifest m;
  m.nodes = {{"node0", 100, 101, ""}, {"node1", 102, 103, ""}};
  m.read_write_port = 200;
  m.read_only_port = 201;
  std::string cfg = haproxyConfig(m);
  EXPECT_NE(cfg.find("bind 127.0.0.1:200\n  option httpchk OPTIONS /primary"), std::string::npos);
  EXPECT_NE(cfg.find("bind 127.0.0.1:201\n  option httpchk OPTIONS /replica"), std::string::npos);
  EXPECT_NE(cfg.find("server node1 127.0.0.1:102 check port 103"), std::string::npos);
  EXPECT_NE(cfg.find("on-marked-down shutdown-sessions"), std::string::npos);
  m.read_only_port = 0;
  EXPECT_EQ(haproxyConfig(m).find("/replica"), std::string::npos);
}

}  // namespace
}  // namespace pgf
