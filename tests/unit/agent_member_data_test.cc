#include "agent/member_data.h"

#include <gtest/gtest.h>

#include "agent/peer_status.h"

namespace pgf {
namespace {

LocalPostgres primary() {
  LocalPostgres pg;
  pg.data_dir_empty = false;
  pg.running = true;
  pg.accepting = true;
  pg.in_recovery = false;
  pg.timeline = 3;
  pg.wal_position = 0x5000060;
  pg.control_state = ControlState::kInProduction;
  return pg;
}

TEST(MemberData, PrimaryIsWrittenAsPatroniWritesIt) {
  MemberIdentity id{
      "postgres://127.0.0.1:5432/postgres", "http://127.0.0.1:8008/patroni", "0.1.0", {}};
  id.tags.nofailover = true;
  auto j = buildMemberData(id, primary(), "");
  EXPECT_EQ(j["conn_url"], "postgres://127.0.0.1:5432/postgres");
  EXPECT_EQ(j["api_url"], "http://127.0.0.1:8008/patroni");
  EXPECT_EQ(j["role"], "master");
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["xlog_location"], 0x5000060);
  EXPECT_EQ(j["timeline"], 3);
  EXPECT_EQ(j["tags"]["nofailover"], true);
  EXPECT_FALSE(j.contains("replication_state"));
}

TEST(MemberData, StatesFollowTheServer) {
  LocalPostgres pg = primary();
  pg.running = false;
  pg.accepting = false;
  EXPECT_EQ(memberState(pg, ""), "crashed");
  pg.control_state = ControlState::kShutDown;
  EXPECT_EQ(memberState(pg, ""), "stopped");
  EXPECT_EQ(memberState(pg, "creating replica"), "creating replica");
  LocalPostgres empty;
  EXPECT_EQ(memberRole(empty), "uninitialized");
  LocalPostgres standby = primary();
  standby.in_recovery = true;
  standby.streaming = true;
  auto j = buildMemberData({}, standby, "");
  EXPECT_EQ(j["role"], "replica");
  EXPECT_EQ(j["replication_state"], "streaming");
}

TEST(PeerStatus, ReadsPatroniStatusDocuments) {
  auto replica = parsePeerStatus("node2",
                                 R"({"state":"running","role":"replica","timeline":2,
          "xlog":{"received_location":83886176,"replayed_location":83886000,"paused":false},
          "tags":{"nofailover":true}})");
  EXPECT_TRUE(replica.reachable);
  EXPECT_TRUE(replica.running);
  EXPECT_TRUE(replica.in_recovery);
  EXPECT_EQ(replica.wal_position, 83886176);
  EXPECT_EQ(replica.timeline, 2);
  EXPECT_TRUE(replica.nofailover);

  auto primary_doc =
      parsePeerStatus("node1", R"({"state":"running","role":"master","xlog":{"location":100}})");
  EXPECT_FALSE(primary_doc.in_recovery);
  EXPECT_EQ(primary_doc.wal_position, 100);

  EXPECT_FALSE(parsePeerStatus("node3", "<html>not json</html>").reachable);
  EXPECT_FALSE(parsePeerStatus("node3", "").reachable);
}

TEST(PeerStatus, SplitsApiUrls) {
  std::string host, path;
  int port = 0;
  ASSERT_TRUE(splitHttpUrl("http://10.0.0.5:8009/patroni", &host, &port, &path));
  EXPECT_EQ(host, "10.0.0.5");
  EXPECT_EQ(port, 8009);
  EXPECT_EQ(path, "/patroni");
  EXPECT_FALSE(splitHttpUrl("https://x:1/", &host, &port, &path));
  EXPECT_FALSE(splitHttpUrl("http://:8008/patroni", &host, &port, &path));
  EXPECT_FALSE(splitHttpUrl("http://host:99999/patroni", &host, &port, &path));
}

}  // namespace
}  // namespace pgf
