// pgfleetctl's REST API client: api_url parsing, base64 and basic authentication, how answers and
// failures become messages, and HttpMemberApi against a real loopback server (cpp-httplib).
#include "ctl/rest_client.h"

#include "common/base64.h"
#include "fakes/scripted_member_api.h"

#include <httplib.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pgf::ctl {
namespace {

using ::testing::HasSubstr;

TEST(CtlRestClient, CredentialsComeFromTheConfigFile) {
  const std::string path = ::testing::TempDir() + "ctl_rest_client_test.yml";
  {
    std::ofstream out(path);
    out << "scope: demo\nname: n1\netcd3:\n  hosts: a:1\npostgresql:\n  data_dir: /d\n"
           "restapi:\n  listen: 127.0.0.1:8008\n  authentication:\n    username: admin\n"
           "    password: s3cret\n";
  }
  auto t = resolveTarget(CtlOptions{path, "", "", ""});
  std::remove(path.c_str());
  ASSERT_TRUE(t.ok()) << t.error().toString();
  EXPECT_EQ(t->api_credentials.username, "admin");
  EXPECT_EQ(t->api_credentials.password, "s3cret");
  EXPECT_TRUE(resolveTarget(CtlOptions{"", "a:1", "", "demo"})->api_credentials.empty());

  EXPECT_EQ(parseOutputFormat("pretty").value(), OutputFormat::kPretty);
  EXPECT_EQ(parseOutputFormat("json").value(), OutputFormat::kJson);
  EXPECT_EQ(parseOutputFormat("tsv").error().message, "unknown format \"tsv\": use pretty or json");
}

TEST(CtlRestClient, BasicAuthorizationAsRfc7617Shows) {
  EXPECT_EQ(basicAuthorization({"Aladdin", "open sesame"}), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  EXPECT_EQ(basicAuthorization({"u", "p:w"}), "Basic " + base64Encode("u:p:w"));
}

TEST(CtlRestClient, ParsesApiUrls) {
  auto a = parseApiUrl("http://127.0.0.1:8008/patroni");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8008);
  EXPECT_EQ(a->base_url, "http://127.0.0.1:8008");

  auto v6 = parseApiUrl("http://[::1]:8009/patroni");
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8009);
  EXPECT_EQ(v6->base_url, "http://[::1]:8009");

  auto no_port = parseApiUrl("http://db1.example");
  ASSERT_TRUE(no_port.ok());
  EXPECT_EQ(no_port->port, 80);
  EXPECT_EQ(no_port->base_url, "http://db1.example");

  auto query = parseApiUrl("http://h:1?x=1");
  ASSERT_TRUE(query.ok());
  EXPECT_EQ(query->base_url, "http://h:1");

  for (const char* bad :
       {"", "127.0.0.1:8008", "ftp://h:1/", "http://", "http://:8008/p", "http://h:0/",
        "http://h:65536/", "http://h:80x/", "http://[::1/", "http://[::1]x/", "http://u:p@h:1/"}) {
    auto r = parseApiUrl(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
    }
  }
  auto tls = parseApiUrl("https://h:8008/patroni");
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.error().message, HasSubstr("https"));
}

TEST(CtlRestClient, AnswerTextIsOneTrimmedLine) {
  EXPECT_EQ(answerText("  Successfully switched over to \"n2\"\n"),
            "Successfully switched over to \"n2\"");
  EXPECT_EQ(answerText("a\r\nb"), "a  b");
  EXPECT_EQ(answerText("\n \t"), "");
  EXPECT_EQ(answerText(R"({"error": "the cluster has no config key yet"})"),
            "the cluster has no config key yet");
  EXPECT_EQ(answerText(R"({"message": "ok\n"})"), "ok");
  EXPECT_EQ(answerText(R"({"pause": true})"), R"({"pause": true})");
}

class RecordingApi final : public MemberApi {
 public:
  Result<ApiAnswer> send(const ApiAddress& address, const std::string& method,
                         const std::string& path, const HttpHeaders& headers,
                         const std::string& body, Millis timeout) override {
    last_url = address.base_url + path;
    last_method = method;
    last_headers = headers;
    last_body = body;
    last_timeout = timeout;
    return answer;
  }

  Result<ApiAnswer> answer = ApiAnswer{200, "ok"};
  std::string last_url, last_method, last_body;
  HttpHeaders last_headers;
  Millis last_timeout{0};
};

TEST(CtlRestClient, CallSendsCredentialsOnlyOnMutatingRequests) {
  RecordingApi api;
  ApiAddress a = parseApiUrl("http://127.0.0.1:8008/patroni").value();
  ApiCredentials creds{"admin", "s3cret"};

  auto r = callMemberApi(api, a, creds, "POST", "/switchover", R"({"leader":"n1"})", Millis(7));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(api.last_url, "http://127.0.0.1:8008/switchover");
  EXPECT_EQ(api.last_body, R"({"leader":"n1"})");
  EXPECT_EQ(api.last_timeout, Millis(7));
  EXPECT_EQ(headerOf(api.last_headers, "Authorization"), basicAuthorization(creds));
  EXPECT_EQ(headerOf(api.last_headers, "Content-Type"), "application/json");

  ASSERT_TRUE(callMemberApi(api, a, creds, "GET", "/patroni", "", Millis(7)).ok());
  EXPECT_EQ(headerOf(api.last_headers, "Authorization"), "");
  EXPECT_EQ(headerOf(api.last_headers, "Content-Type"), "");

  ASSERT_TRUE(callMemberApi(api, a, {}, "PATCH", "/config", "{}", Millis(7)).ok());
  EXPECT_EQ(headerOf(api.last_headers, "Authorization"), "");
}

TEST(CtlRestClient, A401NamesTheUrlAndNeverThePassword) {
  RecordingApi api;
  api.answer = ApiAnswer{401, "no auth header received"};
  ApiAddress a = parseApiUrl("http://127.0.0.1:8008/patroni").value();
  auto r = callMemberApi(api, a, {"admin", "s3cret"}, "POST", "/failover", "{}", Millis(7));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "the REST API at http://127.0.0.1:8008 refused the credentials (401): give -c with "
            "restapi.authentication");
  EXPECT_FALSE(isUnreachable(r.error()));

  api.answer = ApiAnswer{403, "forbidden"};
  auto other = callMemberApi(api, a, {}, "POST", "/failover", "{}", Millis(7));
  ASSERT_TRUE(other.ok());  // the verb judges every other status
  EXPECT_EQ(other->status, 403);
}

TEST(CtlRestClient, TransportFailuresKeepTheirCodeAndNameTheRequest) {
  RecordingApi api;
  api.answer = makeError(ErrorCode::kIo, "connect: connection refused");
  ApiAddress a = parseApiUrl("http://[::1]:8008/patroni").value();
  auto r = callMemberApi(api, a, {}, "PATCH", "/config", "{}", Millis(7));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "PATCH http://[::1]:8008/config: connect: connection refused");
  EXPECT_TRUE(isUnreachable(r.error()));
  EXPECT_TRUE(isUnreachable(makeError(ErrorCode::kTimeout, "t")));
}

TEST(CtlRestClient, HttpMemberApiTalksToARealServer) {
  httplib::Server server;
  std::mutex mu;
  std::map<std::string, std::string> seen;
  server.Post("/switchover", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    seen["authorization"] = req.get_header_value("Authorization");
    seen["content-type"] = req.get_header_value("Content-Type");
    seen["body"] = req.body;
    res.status = 202;
    res.set_content("Switchover scheduled", "text/plain");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  // The socket listens from bind_to_any_port() on, so a request queues until the loop runs.
  std::thread serving([&] { server.listen_after_bind(); });

  HttpMemberApi api;
  ApiAddress a = parseApiUrl("http://127.0.0.1:" + std::to_string(port) + "/patroni").value();
  auto r = callMemberApi(api, a, {"admin", "s3cret"}, "POST", "/switchover", R"({"leader":"n1"})",
                         Millis(5000));
  server.stop();
  serving.join();
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "Switchover scheduled");
  EXPECT_EQ(seen["authorization"], "Basic " + base64Encode("admin:s3cret"));
  EXPECT_EQ(seen["content-type"], "application/json");
  EXPECT_EQ(seen["body"], R"({"leader":"n1"})");

  // Nothing listens there any more.
  auto gone = callMemberApi(api, a, {}, "GET", "/patroni", "", Millis(2000));
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(isUnreachable(gone.error())) << gone.error().toString();
}

}  // namespace
}  // namespace pgf::ctl
