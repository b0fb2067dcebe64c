// The pure renderers of the files pgfleet writes into a data directory.
#include "postgres/config_files.h"

#include <gtest/gtest.h>

namespace pgf {
namespace {

PostgresConfig baseConfig() {
  PostgresConfig pg;
  pg.listen = "127.0.0.1:5433";
  pg.data_dir = "/srv/pg/data";
  pg.superuser = {"postgres", "su-secret"};
  pg.replication = {"replicator", "repl-secret"};
  return pg;
}

ConfigContext contextFor(const PostgresConfig& pg, std::optional<UpstreamConn> upstream = {}) {
  return ConfigContext{
      &pg, "node-a", "demo", "/srv/pg/data", "/srv/pg/pgpass.node-a", std::move(upstream)};
}

TEST(PgConfigFilesTest, QuotesConfValues) {
  EXPECT_EQ(quoteConfValue("plain"), "'plain'");
  EXPECT_EQ(quoteConfValue("it's"), "'it''s'");
  EXPECT_EQ(quoteConfValue("a\\b"), "'a\\\\b'");
  EXPECT_EQ(quoteConfValue("two\nlines"), "'two\\nlines'");
  EXPECT_EQ(quoteConfValue(""), "''");
}

TEST(PgConfigFilesTest, UnquoteReversesQuote) {
  for (std::string v : {"plain", "it's", "a\\b", "two\nlines\ttab", "", "host=x port=1"})
    EXPECT_EQ(unquoteConfValue(quoteConfValue(v)), v) << v;
  EXPECT_EQ(unquoteConfValue(" bare # comment"), "bare");
}

TEST(PgConfigFilesTest, QuotesConninfoValues) {
  EXPECT_EQ(quoteConninfoValue("host1"), "host1");
  EXPECT_EQ(quoteConninfoValue(""), "''");
  EXPECT_EQ(quoteConninfoValue("with space"), "'with space'");
  EXPECT_EQ(quoteConninfoValue("o'k\\"), "'o\\'k\\\\'");
  auto kv = parseConninfo("a=1 b='with space' c='o\\'k\\\\' d=");
  EXPECT_EQ(kv["a"], "1");
  EXPECT_EQ(kv["b"], "with space");
  EXPECT_EQ(kv["c"], "o'k\\");
  EXPECT_EQ(kv["d"], "");
}

TEST(PgConfigFilesTest, EscapesPgpassFields) {
  EXPECT_EQ(escapePgpassField("a:b\\c"), "a\\:b\\\\c");
  EXPECT_EQ(escapePgpassField("plain"), "plain");
}

TEST(PgConfigFilesTest, LocalParametersOverrideClusterOnes) {
  auto pg = baseConfig();
  pg.dcs_parameters = {{"work_mem", "4MB"}, {"max_connections", "50"}};
  pg.parameters = {{"work_mem", "8MB"}};
  auto params = effectiveParameters(contextFor(pg));
  ASSERT_TRUE(params.ok()) << params.error().message;
  EXPECT_EQ(params->at("work_mem"), "8MB");
  EXPECT_EQ(params->at("max_connections"), "50");
}

TEST(PgConfigFilesTest, OwnedSettingsWinOverUserValues) {
  auto pg = baseConfig();
  pg.parameters = {{"port", "9999"},
                   {"hot_standby", "off"},
                   {"wal_log_hints", "off"},
                   {"cluster_name", "other"},
                   {"wal_level", "minimal"},
                   {"max_wal_senders", "3"},
                   {"max_replication_slots", "20"}};
  auto params = effectiveParameters(contextFor(pg));
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(params->at("port"), "5433");
  EXPECT_EQ(params->at("listen_addresses"), "127.0.0.1");
  EXPECT_EQ(params->at("hot_standby"), "on");
  EXPECT_EQ(params->at("wal_log_hints"), "on");
  EXPECT_EQ(params->at("cluster_name"), "demo");
  EXPECT_EQ(params->at("wal_level"), "replica");
  EXPECT_EQ(params->at("max_wal_senders"), "10");
  EXPECT_EQ(params->at("max_replication_slots"), "20");
  EXPECT_EQ(params->at("hba_file"), "/srv/pg/data/pg_hba.conf");
  EXPECT_EQ(params->at("recovery_target_timeline"), "latest");
  EXPECT_EQ(params->count("primary_conninfo"), 0u);
}

TEST(PgConfigFilesTest, KeepsLogicalWalLevelAndListsAllListenHosts) {
  auto pg = baseConfig();
  pg.listen = "127.0.0.1,10.0.0.5:6000";
  pg.parameters = {{"wal_level", "logical"}};
  auto params = effectiveParameters(contextFor(pg));
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(params->at("wal_level"), "logical");
  EXPECT_EQ(params->at("listen_addresses"), "127.0.0.1,10.0.0.5");
  EXPECT_EQ(params->at("port"), "6000");
}

TEST(PgConfigFilesTest, RefusesDirectivesAndMalformedNames) {
  for (std::string bad : {"include", "include_dir", "config_file", "data_directory",
                          "work_mem\ninclude", "a b", ""}) {
    auto pg = baseConfig();
    pg.parameters = {{bad, "x"}};
    auto params = effectiveParameters(contextFor(pg));
    ASSERT_FALSE(params.ok()) << bad;
    EXPECT_EQ(params.error().code, ErrorCode::kConfig);
  }
  auto pg = baseConfig();
  pg.parameters = {{"pg_stat_statements.max", "1000"}};
  EXPECT_TRUE(effectiveParameters(contextFor(pg)).ok());
}

TEST(PgConfigFilesTest, PrimaryConfHasNoUpstreamAndNoPasswords) {
  auto pg = baseConfig();
  auto conf = renderPostgresqlConf(contextFor(pg));
  ASSERT_TRUE(conf.ok());
  EXPECT_EQ(conf->rfind(kConfHeader, 0), 0u);
  EXPECT_NE(conf->find("include_if_exists 'postgresql.base.conf'"), std::string::npos);
  EXPECT_NE(conf->find("wal_level = 'replica'\n"), std::string::npos);
  EXPECT_EQ(conf->find("primary_conninfo"), std::string::npos);
  EXPECT_EQ(conf->find("secret"), std::string::npos);
  EXPECT_FALSE(parseUpstreamFromConf(*conf).has_value());
}

TEST(PgConfigFilesTest, StandbyConfStreamsThroughPassfileAndSlot) {
  auto pg = baseConfig();
  auto conf = renderPostgresqlConf(contextFor(pg, UpstreamConn{"10.0.0.7", 5432, "node_a", ""}));
  ASSERT_TRUE(conf.ok());
  EXPECT_NE(conf->find("primary_conninfo = 'host=10.0.0.7 port=5432 user=replicator "
                       "application_name=node-a passfile=/srv/pg/pgpass.node-a "
                       "connect_timeout=5'"),
            std::string::npos)
      << *conf;
  EXPECT_NE(conf->find("primary_slot_name = 'node_a'"), std::string::npos);
  EXPECT_EQ(conf->find("secret"), std::string::npos);
  auto up = parseUpstreamFromConf(*conf);
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->host, "10.0.0.7");
  EXPECT_EQ(up->port, 5432);
  EXPECT_EQ(up->slot_name, "node_a");
  EXPECT_EQ(up->application_name, "node-a");
}

TEST(PgConfigFilesTest, StandbyWithoutSlotsOrUpstream) {
  auto pg = baseConfig();
  pg.use_slots = false;
  auto params = effectiveParameters(contextFor(pg, UpstreamConn{"h", 1, "node_a", "app"}));
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(params->count("primary_slot_name"), 0u);
  EXPECT_NE(params->at("primary_conninfo").find("application_name=app"), std::string::npos);

  auto no_upstream = effectiveParameters(contextFor(pg, UpstreamConn{}));
  ASSERT_TRUE(no_upstream.ok());
  EXPECT_EQ(no_upstream->count("primary_conninfo"), 0u);
}

TEST(PgConfigFilesTest, ConninfoWithAwkwardPathSurvivesBothQuotings) {
  auto pg = baseConfig();
  ConfigContext ctx = contextFor(pg, UpstreamConn{"h", 7, "", ""});
  ctx.pgpass_path = "/srv/it's here/pgpass";
  auto conf = renderPostgresqlConf(ctx);
  ASSERT_TRUE(conf.ok());
  auto up = parseUpstreamFromConf(*conf);
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->host, "h");
  EXPECT_EQ(up->port, 7);
  auto params = effectiveParameters(ctx);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(parseConninfo(params->at("primary_conninfo"))["passfile"], "/srv/it's here/pgpass");
}

TEST(PgConfigFilesTest, DefaultHbaTrustsOnlyTheLocalSuperuser) {
  auto pg = baseConfig();
  std::string hba = renderPgHba(pg);
  EXPECT_NE(hba.find("local all         \"postgres\" trust"), std::string::npos) << hba;
  EXPECT_NE(hba.find("local replication \"postgres\" trust"), std::string::npos);
  EXPECT_NE(hba.find("host  replication all 127.0.0.1/32 scram-sha-256"), std::string::npos);
  EXPECT_NE(hba.find("host  all         all 127.0.0.1/32 scram-sha-256"), std::string::npos);
  // No other trust line: everything else needs a password.
  size_t trusts = 0;
  for (size_t at = hba.find("trust"); at != std::string::npos; at = hba.find("trust", at + 1))
    ++trusts;
  EXPECT_EQ(trusts, 2u);
}

TEST(PgConfigFilesTest, ConfiguredHbaLinesReplaceTheDefault) {
  auto pg = baseConfig();
  pg.pg_hba = {"host all all 10.0.0.0/8 md5", "local all all peer\nhost all all 0.0.0.0/0 trust"};
  std::string hba = renderPgHba(pg);
  EXPECT_NE(hba.find("host all all 10.0.0.0/8 md5\n"), std::string::npos);
  EXPECT_EQ(hba.find("127.0.0.1"), std::string::npos);
  // An embedded newline cannot start a rule of its own.
  EXPECT_EQ(hba.find("\nhost all all 0.0.0.0/0 trust"), std::string::npos);
}

TEST(PgConfigFilesTest, PgpassHasOneLinePerUserWithPassword) {
  auto pg = baseConfig();
  pg.rewind = {"rewinder", "p:w\\d"};
  EXPECT_EQ(renderPgpass(pg),
            "*:*:*:postgres:su-secret\n*:*:*:replicator:repl-secret\n"
            "*:*:*:rewinder:p\\:w\\\\d\n");
  pg.rewind = {"postgres", "other"};  // same user twice: the first line would win anyway
  pg.replication.password = "";
  EXPECT_EQ(renderPgpass(pg), "*:*:*:postgres:su-secret\n");
}

}  // namespace
}  // namespace pgf
