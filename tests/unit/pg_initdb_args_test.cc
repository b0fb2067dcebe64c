// initdb's command line: authentication defaults and the password file.
#include "postgres/initdb.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace pgf {
namespace {

bool has(const std::vector<std::string>& args, const std::string& arg) {
  return std::find(args.begin(), args.end(), arg) != args.end();
}

TEST(InitdbArgsTest, DefaultsToLocalTrustAndScramOverTcp) {
  auto args = initdbArguments("/d", "postgres", "/tmp/pw", {"--encoding=UTF8"});
  EXPECT_EQ(std::vector<std::string>(args.begin(), args.begin() + 4),
            (std::vector<std::string>{"-D", "/d", "-U", "postgres"}));
  EXPECT_TRUE(has(args, "--pwfile=/tmp/pw"));
  EXPECT_TRUE(has(args, "--encoding=UTF8"));
  EXPECT_TRUE(has(args, "--auth-local=trust"));
  EXPECT_TRUE(has(args, "--auth-host=scram-sha-256"));
}

TEST(InitdbArgsTest, ConfiguredAuthenticationWins) {
  auto args = initdbArguments("/d", "su", "", {"--auth-host=md5"});
  EXPECT_TRUE(has(args, "--auth-host=md5"));
  EXPECT_FALSE(has(args, "--auth-host=scram-sha-256"));
  EXPECT_TRUE(has(args, "--auth-local=trust"));
  for (const auto& a : args)
    EXPECT_EQ(a.rfind("--pwfile", 0), std::string::npos) << "no password, no --pwfile";

  auto both = initdbArguments("/d", "su", "", {"--auth=peer"});
  EXPECT_FALSE(has(both, "--auth-local=trust"));
  EXPECT_FALSE(has(both, "--auth-host=scram-sha-256"));
}

}  // namespace
}  // namespace pgf
