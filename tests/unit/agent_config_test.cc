#include "agent/config.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pgf {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Patroni's own example (postgres0.yml) with etcd3 in place of etcd and a few more parameters.
constexpr const char* kPatroniExample = R"(
scope: batman
namespace: /service/
name: postgresql0

restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008

etcd3:
  hosts: 127.0.0.1:2379, 127.0.0.2:2379

log:
  level: DEBUG

bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 100
        wal_log_hints: "on"
        hot_standby: on
        archive_timeout: 1800s
  initdb:
  - encoding: UTF8
  - data-checksums

postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: data/postgresql0
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /tmp/pgpass0
  authentication:
    replication:
      username: replicator
      password: rep-pass
    superuser:
      username: postgres
      password: zalando
    rewind:
      username: rewind_user
      password: rewind_password
  parameters:
    unix_socket_directories: '..'
    fsync: false
    shared_buffers: 128MB
    random_page_cost: 1.1
  pg_hba:
  - host replication replicator 127.0.0.1/32 md5
  - host all all 0.0.0.0/0 md5

tags:
    nofailover: false
    noloadbalance: true
    clonefrom: false
    nosync: yes
)";

// The smallest valid file; tests add or replace one line at a time.
std::string minimal(const std::string& extra = "") {
  return "scope: demo\nname: n1\netcd3:\n  host: 127.0.0.1:2379\npostgresql:\n  data_dir: /d\n" +
         extra;
}

std::string without(std::string text, const std::string& piece) {
  auto pos = text.find(piece);
  if (pos != std::string::npos)
    text.erase(pos, piece.size());
  return text;
}

Error parseError(const std::string& yaml) {
  auto r = parseAgentConfig(yaml);
  EXPECT_FALSE(r.ok()) << yaml;
  return r.ok() ? Error{} : r.error();
}

TEST(AgentConfig, ParsesFullPatroniExample) {
  auto r = parseAgentConfig(kPatroniExample);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  const auto& c = r->config;
  EXPECT_THAT(r->warnings, IsEmpty());
  EXPECT_EQ(c.scope, "batman");
  EXPECT_EQ(c.namespace_, "/service");
  EXPECT_EQ(c.name, "postgresql0");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.restapi.listen, "127.0.0.1:8008");
  EXPECT_EQ(c.restapi.connect_address, "127.0.0.1:8008");
  EXPECT_THAT(c.etcd.hosts, ElementsAre("127.0.0.1:2379", "127.0.0.2:2379"));
  EXPECT_EQ(c.etcd.protocol, "http");
  EXPECT_EQ(c.bootstrap_dcs.ttl, 30);
  EXPECT_EQ(c.bootstrap_dcs.loop_wait, 10);
  EXPECT_EQ(c.bootstrap_dcs.retry_timeout, 10);
  EXPECT_EQ(c.bootstrap_dcs.maximum_lag_on_failover, 1048576);
  EXPECT_TRUE(c.bootstrap_dcs.use_pg_rewind);
  EXPECT_TRUE(c.postgresql.use_pg_rewind);
  EXPECT_TRUE(c.postgresql.use_slots);
  EXPECT_EQ(c.postgresql.dcs_parameters.at("max_connections"), "100");
  EXPECT_EQ(c.postgresql.dcs_parameters.at("wal_log_hints"), "on");
  EXPECT_EQ(c.postgresql.dcs_parameters.at("hot_standby"), "on");
  EXPECT_EQ(c.postgresql.dcs_parameters.at("archive_timeout"), "1800s");
  EXPECT_THAT(c.postgresql.initdb_options, ElementsAre("--encoding=UTF8", "--data-checksums"));
  EXPECT_EQ(c.postgresql.listen, "127.0.0.1:5432");
  EXPECT_EQ(c.postgresql.connect_address, "127.0.0.1:5432");
  EXPECT_EQ(c.postgresql.data_dir, "data/postgresql0");
  EXPECT_EQ(c.postgresql.bin_dir, "/usr/lib/postgresql/15/bin");
  EXPECT_EQ(c.postgresql.pgpass, "/tmp/pgpass0");
  EXPECT_EQ(c.postgresql.superuser.username, "postgres");
  EXPECT_EQ(c.postgresql.superuser.password, "zalando");
  EXPECT_EQ(c.postgresql.replication.username, "replicator");
  EXPECT_EQ(c.postgresql.replication.password, "rep-pass");
  EXPECT_EQ(c.postgresql.rewind.username, "rewind_user");
  EXPECT_EQ(c.postgresql.rewind.password, "rewind_password");
  EXPECT_EQ(c.postgresql.parameters.at("unix_socket_directories"), "..");
  EXPECT_EQ(c.postgresql.parameters.at("fsync"), "off");
  EXPECT_EQ(c.postgresql.parameters.at("shared_buffers"), "128MB");
  EXPECT_EQ(c.postgresql.parameters.at("random_page_cost"), "1.1");
  EXPECT_THAT(c.postgresql.pg_hba, ElementsAre("host replication replicator 127.0.0.1/32 md5",
                                               "host all all 0.0.0.0/0 md5"));
  EXPECT_FALSE(c.tags.nofailover);
  EXPECT_TRUE(c.tags.noloadbalance);
  EXPECT_FALSE(c.tags.clonefrom);
  EXPECT_TRUE(c.tags.nosync);

  // The DCS "config" value keeps the mapping with its YAML types.
  const auto& raw = c.bootstrap_dcs_raw;
  EXPECT_EQ(raw["ttl"], 30);
  EXPECT_EQ(raw["maximum_lag_on_failover"], 1048576);
  EXPECT_EQ(raw["postgresql"]["use_pg_rewind"], true);
  EXPECT_EQ(raw["postgresql"]["parameters"]["max_connections"], 100);
  EXPECT_EQ(raw["postgresql"]["parameters"]["wal_log_hints"], "on");
  EXPECT_EQ(raw["postgresql"]["parameters"]["hot_standby"], true);
}

// The complete example in docs/agent-configuration.md parses without a warning.
TEST(AgentConfig, DocumentedExampleParses) {
  std::ifstream in(std::string(PGFLEET_SOURCE_DIR) + "/docs/agent-configuration.md");
  ASSERT_TRUE(in) << "docs/agent-configuration.md is missing";
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto start = doc.rfind("```yaml\n");
  ASSERT_NE(start, std::string::npos);
  start += 8;
  auto end = doc.find("```", start);
  ASSERT_NE(end, std::string::npos);
  auto r = parseAgentConfig(doc.substr(start, end - start));
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_THAT(r->warnings, IsEmpty());
  EXPECT_EQ(r->config.etcd.hosts.size(), 3u);
  EXPECT_EQ(r->config.restapi.connect_address, "10.0.0.11:8008");
}

TEST(AgentConfig, LoadsFromFileAndReportsMissingFile) {
  std::string path = ::testing::TempDir() + "agent_config_test.yml";
  {
    std::ofstream out(path);
    out << kPatroniExample;
  }
  auto r = loadAgentConfigFile(path);
  std::remove(path.c_str());
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.scope, "batman");

  auto missing = loadAgentConfigFile(path + ".does-not-exist");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
  EXPECT_THAT(missing.error().message, HasSubstr("cannot open the configuration file"));
}

TEST(AgentConfig, FillsDefaults) {
  auto r = parseAgentConfig(minimal());
  ASSERT_TRUE(r.ok()) << r.error().toString();
  const auto& c = r->config;
  EXPECT_EQ(c.namespace_, "/service");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.restapi.listen, "127.0.0.1:8008");
  EXPECT_EQ(c.restapi.connect_address, "127.0.0.1:8008");
  EXPECT_EQ(c.bootstrap_dcs.ttl, 30);
  EXPECT_TRUE(c.postgresql.use_slots);
  EXPECT_FALSE(c.postgresql.use_pg_rewind);
  EXPECT_EQ(c.bootstrap_dcs_raw, nlohmann::json({{"ttl", 30},
                                                 {"loop_wait", 10},
                                                 {"retry_timeout", 10},
                                                 {"maximum_lag_on_failover", 1048576}}));
  EXPECT_THAT(r->warnings, IsEmpty());
}

TEST(AgentConfig, NormalisesNamespace) {
  for (auto [given, want] :
       std::vector<std::pair<std::string, std::string>>{{"service", "/service"},
                                                        {"/service/", "/service"},
                                                        {"//a//b/", "/a/b"},
                                                        {"/", ""},
                                                        {"''", ""}}) {
    auto r = parseAgentConfig(minimal("namespace: " + given + "\n"));
    ASSERT_TRUE(r.ok()) << given << ": " << r.error().toString();
    EXPECT_EQ(r->config.namespace_, want) << given;
  }
}

TEST(AgentConfig, RestApiConnectAddressDefaultsToListen) {
  auto r = parseAgentConfig(minimal("restapi:\n  listen: 0.0.0.0:8009\n"));
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.restapi.connect_address, "127.0.0.1:8009");
  r = parseAgentConfig(minimal("restapi:\n  listen: 10.1.2.3:8010\n"));
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.restapi.connect_address, "10.1.2.3:8010");
}

TEST(AgentConfig, EtcdHostsAsListStringOrSingleHost) {
  auto base = [](const std::string& etcd) {
    return "scope: demo\nname: n1\npostgresql:\n  data_dir: /d\netcd3:\n" + etcd;
  };
  auto list = parseAgentConfig(base("  hosts:\n  - 127.0.0.1:2379\n  - '[::1]:2380'\n"));
  ASSERT_TRUE(list.ok()) << list.error().toString();
  EXPECT_THAT(list->config.etcd.hosts, ElementsAre("127.0.0.1:2379", "[::1]:2380"));

  auto str = parseAgentConfig(base("  hosts: 'a:1,b:2 , c'\n  protocol: https\n"));
  ASSERT_TRUE(str.ok()) << str.error().toString();
  EXPECT_THAT(str->config.etcd.hosts, ElementsAre("a:1", "b:2", "c:2379"));
  EXPECT_EQ(str->config.etcd.protocol, "https");

  auto single =
      parseAgentConfig(base("  host: etcd.local:2379\n  username: u\n  password: secret\n"));
  ASSERT_TRUE(single.ok()) << single.error().toString();
  EXPECT_THAT(single->config.etcd.hosts, ElementsAre("etcd.local:2379"));
  EXPECT_EQ(single->config.etcd.username, "u");
  EXPECT_EQ(single->config.etcd.password, "secret");
}

TEST(AgentConfig, InitdbForms) {
  auto r = parseAgentConfig(
      minimal("bootstrap:\n  initdb:\n  - data-checksums\n  - encoding: UTF8\n  - locale: C\n"
              "  - --no-instructions\n  - auth-host: scram-sha-256\n"));
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_THAT(r->config.postgresql.initdb_options,
              ElementsAre("--data-checksums", "--encoding=UTF8", "--locale=C", "--no-instructions",
                          "--auth-host=scram-sha-256"));
}

TEST(AgentConfig, RendersParametersAsPostgresReadsThem) {
  auto r =
      parseAgentConfig(minimal("  parameters:\n    a: true\n    b: 'true'\n    c: 100\n    d: 0.5\n"
                               "    e: 'it''s'\n    f: Off\n    g: 64MB\n"));
  ASSERT_TRUE(r.ok()) << r.error().toString();
  const auto& p = r->config.postgresql.parameters;
  EXPECT_EQ(p.at("a"), "on");
  EXPECT_EQ(p.at("b"), "true");  // quoted: a string PostgreSQL reads as a boolean itself
  EXPECT_EQ(p.at("c"), "100");
  EXPECT_EQ(p.at("d"), "0.5");
  EXPECT_EQ(p.at("e"), "it's");
  EXPECT_EQ(p.at("f"), "off");
  EXPECT_EQ(p.at("g"), "64MB");
}

struct ErrorCase {
  std::string yaml;
  std::string expected;  // a substring of the message
};

TEST(AgentConfig, RejectsInvalidValuesNamingTheKey) {
  const std::string no_etcd = "scope: demo\nname: n1\npostgresql:\n  data_dir: /d\n";
  std::vector<ErrorCase> cases = {
      {"name: n1\netcd3:\n  host: a:1\npostgresql:\n  data_dir: /d\n", "scope is required"},
      {"scope: demo\netcd3:\n  host: a:1\npostgresql:\n  data_dir: /d\n", "name is required"},
      {"scope: demo\nname: n1\netcd3:\n  host: a:1\n", "postgresql.data_dir is required"},
      {no_etcd, "etcd3 is required"},
      {no_etcd + "etcd3:\n  hosts: []\n", "at least one host"},
      {no_etcd + "etcd3:\n  hosts: ' , '\n", "at least one host"},
      {no_etcd + "etcd:\n  host: a:1\n", "etcd (v2) is not supported; use etcd3"},
      {no_etcd + "etcd3:\n  host: a:70000\n", "etcd3.host: port 70000 is outside 1..65535"},
      {no_etcd + "etcd3:\n  hosts: [a:0]\n", "etcd3.hosts: port 0 is outside 1..65535"},
      {no_etcd + "etcd3:\n  hosts: http://a:2379\n", "etcd3.hosts"},
      {no_etcd + "etcd3:\n  host: a:1\n  protocol: udp\n", "etcd3.protocol"},
      {minimal("bootstrap:\n  dcs:\n    ttl: 1\n"), "bootstrap.dcs.ttl: must be at least 2"},
      {minimal("bootstrap:\n  dcs:\n    ttl: thirty\n"), "bootstrap.dcs.ttl: must be an integer"},
      {minimal("bootstrap:\n  dcs:\n    loop_wait: 0\n"), "bootstrap.dcs.loop_wait"},
      {minimal("bootstrap:\n  dcs:\n    retry_timeout: 0\n"), "bootstrap.dcs.retry_timeout"},
      {minimal("bootstrap:\n  dcs:\n    maximum_lag_on_failover: -1\n"),
       "bootstrap.dcs.maximum_lag_on_failover: must not be negative"},
      {minimal("bootstrap:\n  dcs:\n    postgresql:\n      use_slots: maybe\n"),
       "bootstrap.dcs.postgresql.use_slots: must be a boolean"},
      {minimal("bootstrap:\n  dcs:\n    postgresql:\n      reclone_on_rewind_failure: 2\n"),
       "bootstrap.dcs.postgresql.reclone_on_rewind_failure: must be a boolean"},
      {minimal("bootstrap:\n  dcs: [1]\n"), "bootstrap.dcs: must be a mapping"},
      {minimal("bootstrap:\n  initdb:\n  - {a: 1, b: 2}\n"), "bootstrap.initdb[0]"},
      {minimal("bootstrap:\n  initdb:\n  - pgdata: /x\n"), "option pgdata is not allowed"},
      {minimal("bootstrap:\n  initdb: data-checksums\n"), "bootstrap.initdb: must be a list"},
      {minimal("restapi:\n  listen: 127.0.0.1\n"), "restapi.listen"},
      {minimal("restapi:\n  listen: 127.0.0.1:99999\n"), "restapi.listen: port 99999"},
      {minimal("restapi:\n  connect_address: ':8008'\n"), "restapi.connect_address"},
      {minimal("  listen: 127.0.0.1:0\n"), "postgresql.listen: port 0"},
      {minimal("  connect_address: h:abc\n"), "postgresql.connect_address: invalid port"},
      {minimal("  parameters:\n    work_mem: [1]\n"), "postgresql.parameters.work_mem"},
      {minimal("  parameters:\n    work_mem:\n"), "postgresql.parameters.work_mem"},
      {minimal("  pg_hba: 'host all all 0/0 md5'\n"), "postgresql.pg_hba: must be a list"},
      {minimal("  authentication:\n    superuser:\n      username: [a]\n"),
       "postgresql.authentication.superuser.username"},
      {minimal("tags:\n  nofailover: perhaps\n"), "tags.nofailover: must be a boolean"},
      {minimal("log:\n  level: LOUD\n"), "log.level"},
      {without(minimal("name: [x]\n"), "name: n1\n"), "name: must be a string"},
      {"scope: a/b\nname: n1\n", "scope: \"a/b\" must not contain '/'"},
      {"- just\n- a list\n", "must be a yaml mapping"},
  };
  for (const auto& c : cases) {
    Error e = parseError(c.yaml);
    EXPECT_EQ(e.code, ErrorCode::kConfig) << c.yaml;
    EXPECT_THAT(e.message, HasSubstr(c.expected)) << c.yaml;
  }
}

TEST(AgentConfig, YamlSyntaxErrorNamesItsLine) {
  Error e = parseError("scope: demo\nname: n1\netcd3:\n  host: a: b\npostgresql: {}\n");
  EXPECT_EQ(e.code, ErrorCode::kConfig);
  EXPECT_THAT(e.message, HasSubstr("yaml syntax error at line 4"));
  e = parseError("scope: demo\nname: n1\netcd3:\n  host: a\n host2: b\n");
  EXPECT_THAT(e.message, HasSubstr("yaml syntax error at line 5"));
}

TEST(AgentConfig, WarnsAboutEveryUnsupportedKeyByPath) {
  auto r = parseAgentConfig(without(
      minimal("  callbacks:\n    on_start: /bin/true\n    on_boot: /bin/true\n  authentication:\n  "
              "  superuser:\n"
              "      sslmode: require\n    other: {}\n"
              "restapi:\n  authentication:\n    username: u\n    password: p\n  certfile: /c\n"
              "etcd3:\n  host: a:1\n  cacert: /ca\n"
              "bootstrap:\n  dcs:\n    master_start_timeout: 300\n    postgresql:\n"
              "      recovery_conf: {}\n  users: {}\n"
              "watchdog:\n  mode: off\nlog:\n  dir: /var/log\ntags:\n  replicatefrom: n2\n  "
              "custom: x\n"),
      "etcd3:\n  host: 127.0.0.1:2379\n"));
  ASSERT_TRUE(r.ok()) << r.error().toString();
  const auto& w = r->warnings;
  for (const char* key :
       {"postgresql.callbacks.on_boot", "postgresql.authentication.superuser.sslmode",
        "postgresql.authentication.other", "restapi.certfile", "etcd3.cacert",
        "bootstrap.dcs.master_start_timeout", "bootstrap.dcs.postgresql.recovery_conf",
        "bootstrap.users", "watchdog", "log.dir", "tags.custom"}) {
    EXPECT_THAT(w, Contains(std::string("unsupported key ") + key + " (ignored)")) << key;
  }
  EXPECT_EQ(w.size(), 11u);
  EXPECT_EQ(r->config.tags.replicatefrom, "n2");
  // Unsupported bootstrap.dcs keys still reach the DCS "config" key.
  EXPECT_EQ(r->config.bootstrap_dcs_raw["master_start_timeout"], 300);
}

TEST(AgentConfig, RestApiAuthenticationNeedsBothUserAndPassword) {
  auto r = parseAgentConfig(
      minimal("restapi:\n  authentication:\n    username: admin\n    password: s3cret\n"));
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.restapi.username, "admin");
  EXPECT_EQ(r->config.restapi.password, "s3cret");
  Error e = parseError(minimal("restapi:\n  authentication:\n    username: admin\n"));
  EXPECT_EQ(e.code, ErrorCode::kConfig);
  EXPECT_THAT(e.message, HasSubstr("restapi.authentication needs both username and password"));
}

TEST(AgentConfig, EffectiveSettingsPreferTheDcsConfig) {
  auto r = parseAgentConfig(minimal(
      "bootstrap:\n  dcs:\n    ttl: 20\n    loop_wait: 5\n    postgresql:\n      use_pg_rewind: "
      "true\n"));
  ASSERT_TRUE(r.ok()) << r.error().toString();
  const auto& config = r->config;

  HaSettings local = effectiveSettings(config, nullptr);
  EXPECT_EQ(local.ttl, 20);
  EXPECT_EQ(local.loop_wait, 5);
  EXPECT_EQ(local.retry_timeout, 10);
  EXPECT_TRUE(local.use_pg_rewind);
  EXPECT_TRUE(local.reclone_on_rewind_failure);
  EXPECT_TRUE(local.use_slots);
  EXPECT_FALSE(local.paused);

  auto dcs = nlohmann::json::parse(R"({"ttl": 12, "loop_wait": 2, "retry_timeout": 3,
      "maximum_lag_on_failover": 500, "pause": true,
      "postgresql": {"use_pg_rewind": false, "use_slots": false,
                     "reclone_on_rewind_failure": false}})");
  HaSettings s = effectiveSettings(config, &dcs);
  EXPECT_EQ(s.ttl, 12);
  EXPECT_EQ(s.loop_wait, 2);
  EXPECT_EQ(s.retry_timeout, 3);
  EXPECT_EQ(s.maximum_lag_on_failover, 500);
  EXPECT_TRUE(s.paused);
  EXPECT_FALSE(s.use_pg_rewind);
  EXPECT_FALSE(s.use_slots);
  EXPECT_FALSE(s.reclone_on_rewind_failure);

  auto partial = nlohmann::json::parse(R"({"loop_wait": 7, "pause": "on"})");
  s = effectiveSettings(config, &partial);
  EXPECT_EQ(s.ttl, 20);
  EXPECT_EQ(s.loop_wait, 7);
  EXPECT_TRUE(s.paused);
  EXPECT_TRUE(s.use_pg_rewind);
  EXPECT_TRUE(s.reclone_on_rewind_failure);
}

TEST(AgentConfig, EffectiveSettingsIgnoreWronglyTypedValues) {
  auto r = parseAgentConfig(minimal());
  ASSERT_TRUE(r.ok()) << r.error().toString();
  auto dcs = nlohmann::json::parse(R"({"ttl": "12", "loop_wait": 2.5, "retry_timeout": -1,
      "maximum_lag_on_failover": -5, "pause": "sometimes", "postgresql": {"use_slots": 3}})");
  HaSettings s = effectiveSettings(r->config, &dcs);
  EXPECT_EQ(s.ttl, 30);
  EXPECT_EQ(s.loop_wait, 10);
  EXPECT_EQ(s.retry_timeout, 10);
  EXPECT_EQ(s.maximum_lag_on_failover, 1048576);
  EXPECT_FALSE(s.paused);
  EXPECT_TRUE(s.use_slots);

  auto not_object = nlohmann::json::array({1, 2});
  EXPECT_EQ(effectiveSettings(r->config, &not_object).ttl, 30);
}

}  // namespace
}  // namespace pgf
