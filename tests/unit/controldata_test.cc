// Parsing pg_controldata output and postmaster.pid.
#include "postgres/controldata.h"

#include <gtest/gtest.h>

#include "postgres/data_dir.h"
#include "postgres/lsn.h"

namespace pgf {
namespace {

// Abridged from PostgreSQL 15's pg_controldata on a freshly initdb'd cluster.
constexpr const char* kShutDownOutput = R"(pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7710791988707814184
Database cluster state:               shut down
pg_control last modified:             Sun Nov 22 00:51:02 2026
Latest checkpoint location:           0/1500708
Latest checkpoint's REDO location:    0/1500708
Latest checkpoint's REDO WAL file:    000000010000000000000001
Latest checkpoint's TimeLineID:       1
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's oldestCommitTsXid:0
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
wal_log_hints setting:                off
Mock authentication nonce:            be80831ad3aaad3ac4c4b16968ac075ed76de5ba654e19c7a63d038c5def4c38
)";

constexpr const char* kStandbyOutput = R"(Database system identifier:           7710791988707814184
Database cluster state:               shut down in recovery
Latest checkpoint location:           0/3000060
Latest checkpoint's TimeLineID:       2
Minimum recovery ending location:     0/3000148
Min recovery ending loc's timeline:   3
)";

TEST(ControlDataTest, ParsesAShutDownPrimary) {
  auto cd = parseControlData(kShutDownOutput);
  ASSERT_TRUE(cd.ok()) << cd.error().message;
  EXPECT_EQ(cd->sysid, "7710791988707814184");
  EXPECT_EQ(cd->state, ControlState::kShutDown);
  EXPECT_EQ(cd->checkpoint_timeline, 1);
  EXPECT_EQ(cd->checkpoint_lsn, *parseLsn("0/1500708"));
  EXPECT_EQ(cd->min_recovery_lsn, 0);
  EXPECT_EQ(cd->min_recovery_timeline, 0);
  // Values keep their own colons; a label glued to its value still parses.
  EXPECT_EQ(cd->fields.at("pg_control last modified"), "Sun Nov 22 00:51:02 2026");
  EXPECT_EQ(cd->fields.at("Latest checkpoint's oldestCommitTsXid"), "0");
}

TEST(ControlDataTest, ParsesAStandbysRecoveryPoint) {
  auto cd = parseControlData(kStandbyOutput);
  ASSERT_TRUE(cd.ok());
  EXPECT_EQ(cd->state, ControlState::kShutDownInRecovery);
  EXPECT_EQ(cd->checkpoint_timeline, 2);
  EXPECT_EQ(cd->min_recovery_lsn, *parseLsn("0/3000148"));
  EXPECT_EQ(cd->min_recovery_timeline, 3);
}

TEST(ControlDataTest, FlagsAControlFileThatFailsItsChecksum) {
  EXPECT_FALSE(parseControlData(kShutDownOutput)->crc_mismatch);
  const std::string damaged =
      std::string(
          "WARNING: Calculated CRC checksum does not match value stored in file.\n"
          "Either the file is corrupt, or it has a different layout than this program\n"
          "is expecting.  The results below are untrustworthy.\n\n") +
      kShutDownOutput;
  auto cd = parseControlData(damaged);
  ASSERT_TRUE(cd.ok()) << cd.error().message;
  EXPECT_TRUE(cd->crc_mismatch);
}

TEST(ControlDataTest, MapsEveryClusterState) {
  EXPECT_EQ(parseControlState("in production"), ControlState::kInProduction);
  EXPECT_EQ(parseControlState("shut down"), ControlState::kShutDown);
  EXPECT_EQ(parseControlState("in archive recovery"), ControlState::kInArchiveRecovery);
  EXPECT_EQ(parseControlState("shut down in recovery"), ControlState::kShutDownInRecovery);
  EXPECT_EQ(parseControlState("in crash recovery"), ControlState::kOther);
  EXPECT_EQ(parseControlState("starting up"), ControlState::kOther);
  EXPECT_EQ(parseControlState("shutting down"), ControlState::kOther);
  EXPECT_EQ(parseControlState("en production"), ControlState::kUnknown);
}

TEST(ControlDataTest, RejectsOutputWithoutIdentity) {
  auto cd = parseControlData("pg_controldata: error: could not open file\n");
  ASSERT_FALSE(cd.ok());
  EXPECT_EQ(cd.error().code, ErrorCode::kParse);
  EXPECT_FALSE(parseControlData("Database cluster state: shut down\n").ok());
}

TEST(ControlDataTest, ReadingAMissingDirectoryFails) {
  auto cd =
      readControlData("/usr/lib/postgresql/15/bin", "/nonexistent/pgfleet-data", Millis(5000));
  EXPECT_FALSE(cd.ok());
}

TEST(PostmasterPidTest, ParsesTheDocumentedLines) {
  auto pm = parsePostmasterPid(
      "4242\n/srv/pg/data\n1700000000\n5433\n/var/run/postgresql\n127.0.0.1\n  5433001  "
      "32768\nready   \n");
  ASSERT_TRUE(pm.has_value());
  EXPECT_EQ(pm->pid, 4242);
  EXPECT_EQ(pm->data_dir, "/srv/pg/data");
  EXPECT_EQ(pm->port, 5433);
  EXPECT_EQ(pm->socket_dir, "/var/run/postgresql");
  EXPECT_EQ(pm->listen_addr, "127.0.0.1");
  EXPECT_EQ(pm->status, "ready");
}

TEST(PostmasterPidTest, ToleratesAHalfWrittenFileAndRejectsGarbage) {
  auto pm = parsePostmasterPid("4242\n/srv/pg/data\n");
  ASSERT_TRUE(pm.has_value());
  EXPECT_EQ(pm->port, 0);
  EXPECT_EQ(pm->status, "");
  EXPECT_FALSE(parsePostmasterPid("").has_value());
  EXPECT_FALSE(parsePostmasterPid("not a pid\n").has_value());
}

TEST(DataDirTest, RefusesToRemoveRoots) {
  for (std::string p : {"", "/", "//", "/.", ".", ".."}) {
    auto s = removeTree(p);
    ASSERT_FALSE(s.ok()) << p;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace pgf
