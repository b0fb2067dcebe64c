// The pieces of the etcd client that need no server: base64, the watch stream splitter, the
// gateway's int64-as-string fields, error answers and option validation.
#include <gtest/gtest.h>

#include "common/base64.h"
#include "dcs/etcd/etcd_client.h"
#include "dcs/etcd/json_stream.h"

namespace pgf {
namespace {

TEST(Base64Test, RoundTripsEveryLengthAndByte) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("/service/batman/leader"), "L3NlcnZpY2UvYmF0bWFuL2xlYWRlcg==");
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 7)
    EXPECT_EQ(base64Decode(base64Encode(all.substr(0, n))), all.substr(0, n)) << n;
}

TEST(Base64Test, RejectsInvalidText) {
  EXPECT_FALSE(base64Decode("Zm9v!").has_value());
  EXPECT_FALSE(base64Decode("Z").has_value());
  EXPECT_EQ(base64Decode("Zm8"), "fo");  // unpadded is accepted
}

TEST(JsonStreamSplitterTest, HandlesSplitAndConcatenatedObjects) {
  JsonStreamSplitter s;
  const std::string a = R"({"result":{"events":[{"kv":{"key":"a}b\"{"}}]}})";
  const std::string b = R"({"result":{"created":true}})";
  const std::string stream = a + "\n" + b + "\r\n" + a;
  // Every way of cutting the stream into two chunks gives the same three objects.
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    JsonStreamSplitter sp;
    auto first = sp.feed(stream.substr(0, cut));
    auto second = sp.feed(stream.substr(cut));
    first.insert(first.end(), second.begin(), second.end());
    ASSERT_EQ(first.size(), 3u) << cut;
    EXPECT_EQ(first[0], a);
    EXPECT_EQ(first[1], b);
    EXPECT_EQ(first[2], a);
    EXPECT_EQ(sp.pending(), 0u);
  }
  // Byte by byte.
  size_t count = 0;
  for (char c : stream)
    count += s.feed(std::string_view(&c, 1)).size();
  EXPECT_EQ(count, 3u);
}

TEST(JsonStreamSplitterTest, KeepsAnUnfinishedObjectPending) {
  JsonStreamSplitter s;
  EXPECT_TRUE(s.feed(R"(garbage {"a":[1,2)").empty());
  EXPECT_GT(s.pending(), 0u);
  auto out = s.feed("]}");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], R"({"a":[1,2]})");
}

TEST(EtcdJsonTest, ReadsInt64AsStringOrNumber) {
  auto j = nlohmann::json::parse(R"({"a":"7587862190926042412","b":12,"c":"x","d":"-3"})");
  EXPECT_EQ(jsonInt64(j, "a"), 7587862190926042412LL);
  EXPECT_EQ(jsonInt64(j, "b"), 12);
  EXPECT_EQ(jsonInt64(j, "c", -1), -1);
  EXPECT_EQ(jsonInt64(j, "d"), -3);
  EXPECT_EQ(jsonInt64(j, "missing", 5), 5);
  EXPECT_EQ(jsonInt64(nlohmann::json::array(), "a", 9), 9);
  EXPECT_EQ(jsonString(j, "b"), "");
  EXPECT_FALSE(jsonBool(j, "a"));
}

TEST(EtcdJsonTest, RecognisesErrorAnswers) {
  auto e = etcdErrorOf(nlohmann::json::parse(
      R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})"));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->first, 5);
  EXPECT_EQ(e->second, "etcdserver: requested lease not found");
  EXPECT_FALSE(etcdErrorOf(nlohmann::json::parse(R"({"ID":"1","TTL":"5","error":""})")));
  EXPECT_FALSE(etcdErrorOf(nlohmann::json::parse(R"({"header":{}})")));
}

TEST(EtcdClientTest, ValidatesOptions) {
  auto make = [](std::vector<std::string> endpoints, std::string protocol = "http") {
    EtcdClientOptions o;
    o.endpoints = std::move(endpoints);
    o.protocol = std::move(protocol);
    return EtcdClient::create(o);
  };
  EXPECT_EQ(make({"127.0.0.1:2379"}, "https").error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(make({"https://127.0.0.1:2379"}).error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(make({"127.0.0.1:2379"}, "gopher").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(make({}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(make({"127.0.0.1"}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(make({"127.0.0.1:x"}).error().code, ErrorCode::kInvalidArgument);
  auto ok = make({"http://127.0.0.1:2379/", "[::1]:2380"});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->endpointsInOrder(), (std::vector<std::string>{"127.0.0.1:2379", "[::1]:2380"}));
  (*ok)->markGood("[::1]:2380");
  EXPECT_EQ((*ok)->endpointsInOrder(), (std::vector<std::string>{"[::1]:2380", "127.0.0.1:2379"}));
}

TEST(EtcdClientTest, NoEndpointAnsweringIsDcsUnavailableWithinTheTimeout) {
  EtcdClientOptions o;
  o.endpoints = {"127.0.0.1:1"};  // port 1: nothing listens there, connections are refused
  o.request_timeout = Millis(300);
  auto c = EtcdClient::create(o);
  ASSERT_TRUE(c.ok());
  auto start = std::chrono::steady_clock::now();
  auto r = (*c)->call("/v3/kv/range", {{"key", "YQ=="}});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kDcsUnavailable);
  EXPECT_TRUE(r.error().retryable);
}

}  // namespace
}  // namespace pgf
