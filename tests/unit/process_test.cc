// runCommand and spawnProcess: what a child starts with.
#include <sys/resource.h>

#include <string>

#include <gtest/gtest.h>

#include "common/process.h"

namespace pgf {
namespace {

// The nice value in the 19th field of /proc/self/stat, as the child itself reads it.
std::string childNice(std::optional<int> nice) {
  CommandSpec spec;
  spec.argv = {"sh", "-c", "cut -d' ' -f19 /proc/self/stat"};
  spec.nice = nice;
  auto r = runCommand(spec, Millis(10000));
  EXPECT_TRUE(r.ok());
  if (!r.ok() || r->exit_code != 0)
    return "failed";
  std::string out = r->output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

TEST(Process, AChildRunsAtTheNiceValueItIsGivenOrInheritsOurs) {
  const int ours = getpriority(PRIO_PROCESS, 0);
  EXPECT_EQ(childNice(std::nullopt), std::to_string(ours));
  // Raising one's nice value needs no privilege.
  EXPECT_EQ(childNice(ours + 3), std::to_string(ours + 3));
}

}  // namespace
}  // namespace pgf
