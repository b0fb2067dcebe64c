// The OSB transport rules every request passes (../shared/OSB.md §1) and GET /v2/catalog.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "broker/osb_api.h"
#include "common/base64.h"

namespace pgf {
namespace {

Catalog oneplan() {
  Catalog c;
  c.service_id = "s1";
  Plan p;
  p.id = "p1";
  p.name = "single-small";
  p.description = "one server";
  c.plans.push_back(p);
  return c;
}

HttpRequest request(std::string method, std::string path, std::string version = "2.17",
                    std::string user = "broker", std::string password = "secret-password") {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  if (!user.empty())
    r.headers.emplace_back("authorization", "Basic " + base64Encode(user + ":" + password));
  if (!version.empty())
    r.headers.emplace_back("x-broker-api-version", version);
  return r;
}

nlohmann::json bodyOf(const HttpReply& r) {
  EXPECT_EQ(r.content_type, "application/json");
  return nlohmann::json::parse(r.body, nullptr, false);
}

class OsbApiTest : public ::testing::Test {
 protected:
  OsbApi api{oneplan(), "broker", "secret-password"};
};

TEST_F(OsbApiTest, TheCatalogIsServedToAnAuthenticatedPlatform) {
  HttpReply r = api.handle(request("GET", "/v2/catalog"));
  EXPECT_EQ(r.status, 200);
  auto doc = bodyOf(r);
  EXPECT_EQ(doc, oneplan().toJson());
  EXPECT_EQ(doc["services"][0]["plans"][0]["name"], "single-small");
}

TEST_F(OsbApiTest, EveryRequestWithoutTheRightCredentialsIs401) {
  for (const auto& req : {request("GET", "/v2/catalog", "2.17", ""),
                          request("GET", "/v2/catalog", "2.17", "broker", "wrong"),
                          request("GET", "/v2/catalog", "2.17", "other", "secret-password"),
                          request("PUT", "/v2/service_instances/x", "", "broker", "wrong"),
                          request("GET", "/nothing", "1.0", "")}) {
    HttpReply r = api.handle(req);
    EXPECT_EQ(r.status, 401) << req.method << " " << req.path;
    EXPECT_EQ(r.headers["WWW-Authenticate"], "Basic realm=\"pgfleet-broker\"");
    auto doc = bodyOf(r);
    EXPECT_FALSE(doc.value("description", "").empty());
    EXPECT_EQ(r.body.find("services"), std::string::npos);
  }
}

TEST_F(OsbApiTest, AMissingEmptyOrTooOldApiVersionIs412) {
  for (const char* version : {"", "2.12", "2.0", "1.17", "3.0", "2", "2.", ".13", "2.x", "2.13.1",
                              "two", "2.-13", "2.\xff\xfe", "\"2.17\""}) {
    HttpReply r = api.handle(request("GET", "/v2/catalog", version));
    EXPECT_EQ(r.status, 412) << "\"" << version << "\"";
    auto doc = bodyOf(r);
    EXPECT_NE(doc.value("description", "").find("2.13 and later"), std::string::npos) << r.body;
    EXPECT_FALSE(doc.contains("error")) << "the spec names no error code for this case";
  }
  for (const char* version : {"2.13", "2.14", "2.16", "2.17", "2.99"})
    EXPECT_EQ(api.handle(request("GET", "/v2/catalog", version)).status, 200) << version;
}

TEST_F(OsbApiTest, TheRequestIdentityIsEchoedOnEveryAnswer) {
  auto ok = request("GET", "/v2/catalog");
  ok.headers.emplace_back("x-broker-api-request-identity", "e26cea32-2aa0-4345-b8c7-9d9b8e9d1f6e");
  EXPECT_EQ(api.handle(ok).headers["X-Broker-API-Request-Identity"],
            "e26cea32-2aa0-4345-b8c7-9d9b8e9d1f6e");
  auto refused = request("GET", "/v2/catalog", "2.1");
  refused.headers.emplace_back("x-broker-api-request-identity", "abc");
  EXPECT_EQ(api.handle(refused).headers["X-Broker-API-Request-Identity"], "abc");
  // Control characters would split the answer's header: such an identity is not sent back.
  auto hostile = request("GET", "/v2/catalog");
  hostile.headers.emplace_back("x-broker-api-request-identity", "a\r\nSet-Cookie: x=1");
  EXPECT_EQ(api.handle(hostile).headers.count("X-Broker-API-Request-Identity"), 0u);
}

TEST_F(OsbApiTest, UnknownPathsAndMethodsGetJsonErrors) {
  HttpReply r = api.handle(request("GET", "/v2/nothing\"<script>"));
  EXPECT_EQ(r.status, 404);
  auto doc = bodyOf(r);
  ASSERT_TRUE(doc.is_object()) << r.body;
  EXPECT_EQ(doc["description"], "no such endpoint: GET \"/v2/nothing\\\"<script>\"");

  HttpReply m = api.handle(request("DELETE", "/v2/catalog"));
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.headers["Allow"], "GET");
  EXPECT_TRUE(bodyOf(m).is_object());
}

TEST(OsbApi, ParsesApiVersions) {
  EXPECT_EQ(parseApiVersion("2.17"), std::make_pair(2, 17));
  EXPECT_EQ(parseApiVersion("2.13"), std::make_pair(2, 13));
  EXPECT_EQ(parseApiVersion("10.0"), std::make_pair(10, 0));
  for (const char* bad : {"", "2", "2.", ".1", "2.1.0", "a.b", "2.1x", " 2.1", "-2.1"})
    EXPECT_FALSE(parseApiVersion(bad).has_value()) << bad;
}

TEST(OsbApi, ErrorBodiesCarryTheCodeOnlyWhenThereIsOne) {
  auto with = nlohmann::json::parse(osbError(422, "AsyncRequired", "needs async").body);
  EXPECT_EQ(with, (nlohmann::json{{"error", "AsyncRequired"}, {"description", "needs async"}}));
  auto without = nlohmann::json::parse(osbError(410, "", "gone").body);
  EXPECT_EQ(without, (nlohmann::json{{"description", "gone"}}));
}

}  // namespace
}  // namespace pgf
