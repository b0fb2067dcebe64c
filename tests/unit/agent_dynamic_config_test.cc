// The checks every writer of the DCS "config" key applies (PATCH/PUT /config, edit-config).
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/dynamic_config.h"

namespace pgf {
namespace {

using nlohmann::json;

TEST(DynamicConfig, ValidatesBeforeWriting) {
  EXPECT_TRUE(validateDynamicConfig(
                  json::parse(
                      R"({"ttl":30,"loop_wait":1,"retry_timeout":10,"maximum_lag_on_failover":0,
                      "pause":false,"check_timeline":null,"other":"anything",
                      "postgresql":{"use_pg_rewind":true,"parameters":{"work_mem":"8MB","a":1}}})"))
                  .ok());
  EXPECT_TRUE(
      validateDynamicConfig(json::parse(R"({"ttl":null,"pause":null,"postgresql":null})")).ok());
  auto message = [](const char* text) {
    auto st = validateDynamicConfig(json::parse(text));
    return st.ok() ? std::string("ok") : st.error().message;
  };
  EXPECT_EQ(message(R"({"ttl":"30"})"),
            "invalid configuration: ttl must be an integer of at least 2, not \"30\"");
  EXPECT_EQ(message(R"({"ttl":1})"),
            "invalid configuration: ttl must be an integer of at least 2, not 1");
  EXPECT_EQ(message(R"({"loop_wait":0})"),
            "invalid configuration: loop_wait must be an integer of at least 1, not 0");
  EXPECT_EQ(message(R"({"retry_timeout":1.5})"),
            "invalid configuration: retry_timeout must be an integer of at least 1, not 1.5");
  EXPECT_EQ(message(R"({"maximum_lag_on_failover":-1})"),
            "invalid configuration: maximum_lag_on_failover must be a non-negative integer, not "
            "-1");
  EXPECT_EQ(message(R"({"maximum_lag_on_failover":true})"),
            "invalid configuration: maximum_lag_on_failover must be a non-negative integer, not "
            "true");
  EXPECT_EQ(message(R"({"pause":"yes"})"),
            "invalid configuration: pause must be true or false, not \"yes\"");
  EXPECT_EQ(message(R"({"postgresql":[]})"), "invalid configuration: postgresql must be a mapping");
  EXPECT_EQ(message(R"({"postgresql":{"use_slots":1}})"),
            "invalid configuration: postgresql.use_slots must be true or false, not 1");
  EXPECT_EQ(message(R"({"postgresql":{"reclone_on_rewind_failure":"no"}})"),
            "invalid configuration: postgresql.reclone_on_rewind_failure must be true or false, "
            "not \"no\"");
  EXPECT_EQ(message(R"({"postgresql":{"parameters":"x"}})"),
            "invalid configuration: postgresql.parameters must be a mapping");
  EXPECT_EQ(message(R"({"postgresql":{"parameters":{"a":{"b":1}}}})"),
            "invalid configuration: postgresql.parameters.a must be a string, number or boolean");
  EXPECT_FALSE(validateDynamicConfig(json::array()).ok());
}

}  // namespace
}  // namespace pgf
