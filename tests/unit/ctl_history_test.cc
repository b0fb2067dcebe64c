// pgfleetctl history: the timeline history table and JSON.
#include "ctl/history.h"

#include <sstream>

#include <gtest/gtest.h>

#include "dcs/memory/memory_dcs.h"
#include "fakes/fake_clock.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

TEST(CtlHistory, TableLikePatronictl) {
  json history = json::parse(R"([
    [1, 50331808, "no recovery target specified", "2024-05-01T10:00:00.000000+00:00", "n2"],
    [2, 83886240, "no recovery target specified"],
    "not an entry",
    [13, 1207959712, null, "2024-05-02T11:30:00.000000+00:00", "n1", "extra"]])");
  EXPECT_EQ(formatHistoryTable(history),
            "+----+------------+------------------------------+----------------------------------+"
            "------------+\n"
            "| TL |        LSN | Reason                       | Timestamp                        |"
            " New Leader |\n"
            "+----+------------+------------------------------+----------------------------------+"
            "------------+\n"
            "|  1 |   50331808 | no recovery target specified | 2024-05-01T10:00:00.000000+00:00 |"
            " n2         |\n"
            "|  2 |   83886240 | no recovery target specified |                                  |"
            "            |\n"
            "| 13 | 1207959712 |                              | 2024-05-02T11:30:00.000000+00:00 |"
            " n1         |\n"
            "+----+------------+------------------------------+----------------------------------+"
            "------------+\n");
  EXPECT_EQ(formatHistoryTable(json::array()),
            "+----+-----+--------+-----------+------------+\n"
            "| TL | LSN | Reason | Timestamp | New Leader |\n"
            "+----+-----+--------+-----------+------------+\n"
            "+----+-----+--------+-----------+------------+\n");
  EXPECT_EQ(formatHistoryTable(json::object()), formatHistoryTable(json::array()));
}

TEST(CtlHistory, RunPrintsTheKey) {
  FakeClock clock;
  auto store = std::make_shared<MemoryStore>(clock);
  store->put("/service/demo/initialize", "7312345678901234567");
  store->put("/service/demo/history", R"([[1,50331808,"no recovery target specified"]])");
  MemoryDcs dcs(store, "demo", "pgfleetctl", 30);
  CtlTarget target;
  target.scope = "demo";
  std::ostringstream out, err;
  EXPECT_EQ(runHistory(target, dcs, OutputFormat::kJson, out, err), 0);
  EXPECT_EQ(out.str(), "[[1,50331808,\"no recovery target specified\"]]\n");
  std::ostringstream pretty, err2;
  EXPECT_EQ(runHistory(target, dcs, OutputFormat::kPretty, pretty, err2), 0);
  EXPECT_NE(pretty.str().find("|  1 | 50331808 | no recovery target specified |"),
            std::string::npos);

  MemoryDcs none(store, "nosuch", "pgfleetctl", 30);
  CtlTarget other = target;
  other.scope = "nosuch";
  std::ostringstream out3, err3;
  EXPECT_EQ(runHistory(other, none, OutputFormat::kJson, out3, err3), 1);
  EXPECT_EQ(err3.str(), "pgfleetctl: no cluster nosuch in etcd (nothing under /service/nosuch/)\n");
}

}  // namespace
}  // namespace pgf::ctl
