// pgfleetctl show-config and edit-config: the pure config edits (--set, --pg, merge patch), the
// YAML rendering and its round trip, the diff, validation, and the runs over a MemoryDcs.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/config_edit.h"
#include "ctl/edit_config.h"
#include "dcs/memory/memory_dcs.h"
#include "fakes/fake_clock.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

ConfigSetting setting(const std::string& text) {
  auto s = parseConfigSetting(text);
  EXPECT_TRUE(s.ok()) << text << ": " << (s.ok() ? "" : s.error().message);
  return s.ok() ? s.value() : ConfigSetting{};
}

TEST(CtlConfigEdit, ParsesSettingsAsPatronictlDoes) {
  auto ttl = setting(" ttl = 30");
  EXPECT_EQ(ttl.path, (std::vector<std::string>{"ttl"}));
  EXPECT_EQ(ttl.value, json(30));
  auto nested = setting("postgresql.use_pg_rewind=true");
  EXPECT_EQ(nested.path, (std::vector<std::string>{"postgresql", "use_pg_rewind"}));
  EXPECT_EQ(nested.value, json(true));
  EXPECT_EQ(setting("a=null").value, json(nullptr));
  EXPECT_EQ(setting("a=").value, json(nullptr));
  EXPECT_EQ(setting("a='10'").value, json("10"));
  EXPECT_EQ(setting("a=1.5").value, json(1.5));
  EXPECT_EQ(setting("a=hello world").value, json("hello world"));
  EXPECT_EQ(setting("a=x=y").value, json("x=y"));
  EXPECT_EQ(setting("a=[1, two]").value, json({1, "two"}));

  EXPECT_EQ(parseConfigSetting("ttl").error().message,
            "invalid setting \"ttl\": expected KEY=VALUE");
  EXPECT_THAT(parseConfigSetting("a..b=1").error().message, HasSubstr("empty key name"));
  EXPECT_THAT(parseConfigSetting(".a=1").error().message, HasSubstr("empty key name"));
  EXPECT_THAT(parseConfigSetting("=1").error().message, HasSubstr("empty key name"));
  EXPECT_THAT(parseConfigSetting("a=[1").error().message, StartsWith("invalid value in \"a=[1\""));
  EXPECT_EQ(pgParameterSetting(" work_mem=8MB"), "postgresql.parameters.work_mem=8MB");
}

TEST(CtlConfigEdit, SetsAndDeletesNestedKeys) {
  json c = {{"ttl", 30}, {"postgresql", {{"parameters", {{"max_connections", 100}}}}}};
  setConfigValue(c, {"postgresql", "parameters", "work_mem"}, "8MB");
  setConfigValue(c, {"postgresql", "parameters", "pg_stat_statements", "max"}, 500);
  setConfigValue(c, {"a", "b", "c"}, true);
  EXPECT_EQ(c, json::parse(R"({"ttl":30,"a":{"b":{"c":true}},
      "postgresql":{"parameters":{"max_connections":100,"work_mem":"8MB",
                                  "pg_stat_statements.max":500}}})"));

  setConfigValue(c, {"a", "b", "c"}, nullptr);  // empty parents go too
  setConfigValue(c, {"postgresql", "parameters", "pg_stat_statements", "max"}, nullptr);
  setConfigValue(c, {"nosuch", "key"}, nullptr);
  setConfigValue(c, {"ttl", "x"}, nullptr);  // not an object: nothing to delete
  EXPECT_EQ(c, json::parse(R"({"ttl":30,"postgresql":{"parameters":{"max_connections":100,
                                                                   "work_mem":"8MB"}}})"));
  setConfigValue(c, {"ttl", "x"}, 1);  // a scalar in the way becomes an object
  EXPECT_EQ(c["ttl"], json({{"x", 1}}));
}

TEST(CtlConfigEdit, MergesAsAJsonMergePatch) {
  json c = {{"ttl", 30}, {"loop_wait", 10}, {"postgresql", {{"parameters", {{"a", 1}, {"b", 2}}}}}};
  json patch =
      json::parse(R"({"ttl":20,"loop_wait":null,"postgresql":{"parameters":{"b":null,"c":3}},
                              "new":{"x":null,"y":1}})");
  EXPECT_EQ(mergeConfig(c, patch),
            json::parse(R"({"ttl":20,"postgresql":{"parameters":{"a":1,"c":3}},
                                                  "new":{"y":1}})"));
}

TEST(CtlConfigEdit, RendersSortedYaml) {
  json c = json::parse(R"({"ttl":30,"loop_wait":10,"pause":true,"check_timeline":null,
      "postgresql":{"use_pg_rewind":true,"parameters":{"work_mem":"8MB","max_connections":100,
      "ratio":0.5}},"slots":{},"tags":[]})");
  EXPECT_EQ(configAsYaml(c),
            "check_timeline: null\n"
            "loop_wait: 10\n"
            "pause: true\n"
            "postgresql:\n"
            "  parameters:\n"
            "    max_connections: 100\n"
            "    ratio: 0.5\n"
            "    work_mem: 8MB\n"
            "  use_pg_rewind: true\n"
            "slots: {}\n"
            "tags: []\n"
            "ttl: 30\n");
  EXPECT_EQ(configAsYaml(json::object()), "{}\n");
  // Strings PyYAML (so patronictl) would read as numbers, times or booleans are quoted.
  EXPECT_EQ(configAsYaml(json{{"a", "0x1F"},
                              {"b", "2024-05-01"},
                              {"c", ".inf"},
                              {"d", "on"},
                              {"e", "8MB"},
                              {"f", "10"}}),
            "a: \"0x1F\"\nb: \"2024-05-01\"\nc: \".inf\"\nd: \"on\"\ne: 8MB\nf: \"10\"\n");
}

TEST(CtlConfigEdit, YamlReadsBackAsTheSameJson) {
  json c = json::object();
  int i = 0;
  for (const char* s :
       {"true",        "False", "yes",  "off",  "10",   "-3",   "1.5",     "1e3",       "",
        " x",          "x ",    "null", "~",    "a: b", "#c",   "- x",     "'q'",       "\"d\"",
        "multi\nline", "tab\t", "é ü",  "{a}",  "[1]",  "*ref", "&anchor", "!tag",      "%x",
        "@x",          "`x",    "0x1F", "0o17", "012",  ".inf", "1_000",   "2024-05-01"})
    c["k" + std::to_string(i++)] = s;
  c["yes"] = "key that reads as a boolean";
  c["10"] = 10;
  c["list"] = {1, "2", nullptr, false, {{"a", "b"}}};
  c["big"] = 9007199254740993LL;
  c["small"] = -1;
  c["frac"] = 0.1;
  const std::string yaml = configAsYaml(c);
  auto back = parseConfigDocument(yaml, "rendered");
  ASSERT_TRUE(back.ok()) << back.error().message << "\n" << yaml;
  EXPECT_EQ(*back, c) << yaml;
}

TEST(CtlConfigEdit, ParsesDocumentsThatAreMappings) {
  EXPECT_EQ(parseConfigDocument(R"({"ttl": 30, "a": {"b": null}})", "x").value(),
            json::parse(R"({"ttl":30,"a":{"b":null}})"));
  EXPECT_EQ(parseConfigDocument("ttl: 30\npause: yes\n", "x").value(),
            json::parse(R"({"ttl":30,"pause":true})"));
  EXPECT_EQ(parseConfigDocument("- 1\n", "--apply f.yml").error().message,
            "--apply f.yml: not a mapping of configuration keys");
  EXPECT_EQ(parseConfigDocument("", "edited").error().message,
            "edited: not a mapping of configuration keys");
  EXPECT_THAT(parseConfigDocument("a: [1\n", "f").error().message,
              StartsWith("f: yaml syntax error at line"));
}

TEST(CtlConfigEdit, DiffsLineByLine) {
  EXPECT_EQ(unifiedDiff("a\nb\n", "a\nb\n"), "");
  EXPECT_EQ(unifiedDiff("loop_wait: 10\npause: true\nttl: 30\n", "loop_wait: 10\nttl: 20\n"),
            "--- before\n+++ after\n"
            "@@ -1,3 +1,2 @@\n"
            " loop_wait: 10\n"
            "-pause: true\n"
            "-ttl: 30\n"
            "+ttl: 20\n");
  EXPECT_EQ(unifiedDiff("", "a: 1\n"), "--- before\n+++ after\n@@ -0,0 +1 @@\n+a: 1\n");

  // Changes more than six unchanged lines apart make two hunks, with three lines of context.
  std::string before, after;
  for (int i = 1; i <= 20; ++i) {
    before += "l" + std::to_string(i) + "\n";
    after += (i == 2 ? "L2" : i == 15 ? "L15" : "l" + std::to_string(i)) + "\n";
  }
  EXPECT_EQ(unifiedDiff(before, after),
            "--- before\n+++ after\n"
            "@@ -1,5 +1,5 @@\n l1\n-l2\n+L2\n l3\n l4\n l5\n"
            "@@ -12,7 +12,7 @@\n l12\n l13\n l14\n-l15\n+L15\n l16\n l17\n l18\n");
  // ... and at most six apart, one.
  std::string close = before;
  close.replace(close.find("l9\n"), 3, "L9\n");
  EXPECT_THAT(unifiedDiff(before, close), HasSubstr("@@ -6,7 +6,7 @@\n"));
}

class CtlConfigRun : public ::testing::Test {
 protected:
  void SetUp() override {
    store_->put("/service/demo/initialize", "7312345678901234567");
    store_->put("/service/demo/config", R"({"ttl":30,"loop_wait":10})");
    target_.scope = "demo";
    target_.etcd.hosts = {"127.0.0.1:2379"};
  }
  json config() {
    auto c = dcs_.load().value().config;
    return c ? *c : json();
  }
  int edit(const EditConfigRequest& request, const std::string& input = "",
           ConfigEditor editor = nullptr) {
    if (!editor)
      editor = [](const std::string&, const std::string&) -> Result<std::string> {
        ADD_FAILURE() << "the editor should not run";
        return makeError(ErrorCode::kInternal, "no editor");
      };
    std::istringstream in(input);
    return runEditConfig(target_, dcs_, request, in, editor, out_, err_);
  }

  FakeClock clock_;
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>(clock_);
  MemoryDcs dcs_{store_, "demo", "pgfleetctl", 30};
  CtlTarget target_;
  std::ostringstream out_, err_;
};

TEST_F(CtlConfigRun, ShowConfigAsYamlOrJson) {
  EXPECT_EQ(runShowConfig(target_, dcs_, OutputFormat::kPretty, out_, err_), 0);
  EXPECT_EQ(out_.str(), "loop_wait: 10\nttl: 30\n");
  std::ostringstream out, err;
  EXPECT_EQ(runShowConfig(target_, dcs_, OutputFormat::kJson, out, err), 0);
  EXPECT_EQ(out.str(), "{\"loop_wait\":10,\"ttl\":30}\n");

  store_->erase("/service/demo/config");
  std::ostringstream out2, err2;
  EXPECT_EQ(runShowConfig(target_, dcs_, OutputFormat::kPretty, out2, err2), 1);
  EXPECT_EQ(err2.str(), "pgfleetctl: cluster has no config key\n");
}

TEST_F(CtlConfigRun, SetAndPgWriteTheChangeAndShowIt) {
  EditConfigRequest r;
  r.settings = {"ttl=20", "loop_wait=null"};
  r.pg_settings = {"work_mem=8MB"};
  EXPECT_EQ(edit(r), 0) << err_.str();
  EXPECT_EQ(config(), json::parse(R"({"ttl":20,"postgresql":{"parameters":{"work_mem":"8MB"}}})"));
  EXPECT_EQ(out_.str(),
            "--- before\n+++ after\n"
            "@@ -1,2 +1,4 @@\n"
            "-loop_wait: 10\n"
            "-ttl: 30\n"
            "+postgresql:\n"
            "+  parameters:\n"
            "+    work_mem: 8MB\n"
            "+ttl: 20\n"
            "Configuration changed\n");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CtlConfigRun, NoChangeWritesNothing) {
  const int64_t revision = store_->get("/service/demo/config")->mod_revision;
  EditConfigRequest r;
  r.settings = {"ttl=30"};
  EXPECT_EQ(edit(r), 0);
  EXPECT_EQ(out_.str(), "Not changed\n");
  EXPECT_EQ(store_->get("/service/demo/config")->mod_revision, revision);

  std::ostringstream quiet_out;
  r.quiet = true;
  std::istringstream in;
  EXPECT_EQ(runEditConfig(target_, dcs_, r, in, nullptr, quiet_out, err_), 0);
  EXPECT_EQ(quiet_out.str(), "");
}

TEST_F(CtlConfigRun, InvalidConfigsAreRefused) {
  EditConfigRequest r;
  r.settings = {"ttl=thirty"};
  EXPECT_EQ(edit(r), 1);
  EXPECT_EQ(err_.str(),
            "pgfleetctl: invalid configuration: ttl must be an integer of at least 2, not "
            "\"thirty\"\n");
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(config(), json::parse(R"({"ttl":30,"loop_wait":10})"));

  std::ostringstream out, err;
  r.settings = {"novalue"};
  std::istringstream in;
  EXPECT_EQ(runEditConfig(target_, dcs_, r, in, nullptr, out, err), 1);
  EXPECT_EQ(err.str(), "pgfleetctl: invalid setting \"novalue\": expected KEY=VALUE\n");
}

TEST_F(CtlConfigRun, ApplyMergesAndReplaceReplaces) {
  const std::string path = ::testing::TempDir() + "ctl_config_test_apply.yml";
  {
    std::ofstream f(path);
    f << "loop_wait: null\npostgresql:\n  parameters:\n    work_mem: 8MB\n";
  }
  EditConfigRequest apply;
  apply.apply_file = path;
  apply.quiet = true;
  EXPECT_EQ(edit(apply), 0) << err_.str();
  EXPECT_EQ(config(), json::parse(R"({"ttl":30,"postgresql":{"parameters":{"work_mem":"8MB"}}})"));
  EXPECT_EQ(out_.str(), "Configuration changed\n");

  EditConfigRequest replace;
  replace.replace_file = "-";
  replace.settings = {"pause=true"};
  EXPECT_EQ(edit(replace, R"({"ttl": 25, "loop_wait": 5})"), 0) << err_.str();
  EXPECT_EQ(config(), json::parse(R"({"ttl":25,"loop_wait":5,"pause":true})"));

  // --replace, then --apply on top of it.
  replace.replace_file = path;
  replace.apply_file = "-";
  replace.settings.clear();
  EXPECT_EQ(edit(replace, "loop_wait: 7\n"), 0) << err_.str();
  std::remove(path.c_str());
  EXPECT_EQ(config(),
            json::parse(R"({"loop_wait":7,"postgresql":{"parameters":{"work_mem":"8MB"}}})"));

  std::ostringstream out, err;
  replace.replace_file = "-";
  std::istringstream in;
  EXPECT_EQ(runEditConfig(target_, dcs_, replace, in, nullptr, out, err), 1);
  EXPECT_EQ(err.str(),
            "pgfleetctl: only one of --apply and --replace can read the standard input\n");

  std::ostringstream out2, err2;
  EditConfigRequest missing;
  missing.apply_file = "/nonexistent/x.yml";
  EXPECT_EQ(runEditConfig(target_, dcs_, missing, in, nullptr, out2, err2), 1);
  EXPECT_EQ(err2.str(),
            "pgfleetctl: --apply: cannot read /nonexistent/x.yml: No such file or directory\n");
}

TEST_F(CtlConfigRun, TheEditorEditsTheYaml) {
  std::string shown;
  auto editor = [&](const std::string& yaml, const std::string& scope) -> Result<std::string> {
    shown = yaml;
    EXPECT_EQ(scope, "demo");
    return std::string("# my comment\nloop_wait: 10\nttl: 40\n");
  };
  EXPECT_EQ(edit({}, "", editor), 0) << err_.str();
  EXPECT_EQ(shown, "loop_wait: 10\nttl: 30\n");
  EXPECT_EQ(config(), json::parse(R"({"ttl":40,"loop_wait":10})"));
  EXPECT_EQ(out_.str(),
            "--- before\n+++ after\n@@ -1,2 +1,2 @@\n loop_wait: 10\n-ttl: 30\n+ttl: 40\n"
            "Configuration changed\n");

  std::ostringstream out, err;
  std::istringstream in;
  auto emptied = [](const std::string&, const std::string&) -> Result<std::string> {
    return std::string("");
  };
  EXPECT_EQ(runEditConfig(target_, dcs_, {}, in, emptied, out, err), 1);
  EXPECT_EQ(err.str(),
            "pgfleetctl: the edited configuration: not a mapping of configuration keys\n");
}

TEST_F(CtlConfigRun, AConcurrentChangeIsNeverOverwritten) {
  auto racing = [&](const std::string& yaml, const std::string&) -> Result<std::string> {
    store_->put("/service/demo/config", R"({"ttl":30,"loop_wait":5})");  // another operator
    return "pause: true\n" + yaml;
  };
  EXPECT_EQ(edit({}, "", racing), 1);
  EXPECT_EQ(err_.str(), "pgfleetctl: config changed concurrently, try again\n");
  EXPECT_EQ(config(), json::parse(R"({"ttl":30,"loop_wait":5})"));
}

TEST_F(CtlConfigRun, AMissingConfigKeyIsCreatedOnlyIfStillMissing) {
  store_->erase("/service/demo/config");
  EditConfigRequest r;
  r.settings = {"ttl=30"};
  r.quiet = true;
  EXPECT_EQ(edit(r), 0) << err_.str();
  EXPECT_EQ(config(), json({{"ttl", 30}}));

  store_->erase("/service/demo/config");
  std::ostringstream out, err;
  std::istringstream in;
  auto racing = [&](const std::string& yaml, const std::string&) -> Result<std::string> {
    EXPECT_EQ(yaml, "{}\n");
    store_->put("/service/demo/config", R"({"ttl":20})");
    return std::string("ttl: 40\n");
  };
  EXPECT_EQ(runEditConfig(target_, dcs_, {}, in, racing, out, err), 1);
  EXPECT_EQ(err.str(), "pgfleetctl: config changed concurrently, try again\n");
  EXPECT_EQ(config(), json({{"ttl", 20}}));
}

TEST(CtlEditor, RunsEditorThroughTheShellOnATemporaryFile) {
  const char* old = std::getenv("EDITOR");
  const std::string saved = old ? old : "";
  ::setenv("EDITOR", "sed -i -e 's/ttl: 30/ttl: 45/'", 1);
  auto edited = editWithEditor("loop_wait: 10\nttl: 30\n", "de mo/x");
  ASSERT_TRUE(edited.ok()) << edited.error().message;
  EXPECT_EQ(*edited, "loop_wait: 10\nttl: 45\n");

  ::setenv("EDITOR", "false", 1);
  auto failed = editWithEditor("ttl: 30\n", "demo");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().message, "the editor false exited with status 1: nothing changed");

  // The temporary file is gone afterwards.
  ::setenv("EDITOR", "echo >/tmp/ctl_config_test_editor_path", 1);
  ASSERT_TRUE(editWithEditor("x: 1\n", "demo").ok());
  std::ifstream f("/tmp/ctl_config_test_editor_path");
  std::string path;
  std::getline(f, path);
  std::remove("/tmp/ctl_config_test_editor_path");
  EXPECT_THAT(path, ::testing::MatchesRegex(".*/demo-config-.*\\.yaml"));
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
  if (old)
    ::setenv("EDITOR", saved.c_str(), 1);
  else
    ::unsetenv("EDITOR");
}

}  // namespace
}  // namespace pgf::ctl
