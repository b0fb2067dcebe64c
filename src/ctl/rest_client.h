// Talking to a member's REST API from pgfleetctl: where the API is (the member key's api_url), how
// pgfleetctl authenticates (HTTP basic, with the agent config's restapi.authentication), and what a
// refusal means. The transport is the MemberApi interface, so that the verbs can be tested without
// sockets; HttpMemberApi is the real one.
//
// Never: print or log the password, retry a request (a switchover must not be sent twice), or
// follow a redirect.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/http_client.h"
#include "common/result.h"
#include "ctl/ctl_context.h"

namespace pgf::ctl {

// Where a member's REST API listens, from its api_url ("http://127.0.0.1:8008/patroni").
struct ApiAddress {
  std::string host;      // a name or a numeric address; IPv6 without brackets
  int port = 0;          // 80 when the URL names none
  std::string base_url;  // the URL without its path: "http://127.0.0.1:8008", "http://[::1]:8008"
};

// Errors (kInvalidArgument) for anything but "http://host[:port][/path]": https is refused
// because pgfleetctl speaks no TLS.
Result<ApiAddress> parseApiUrl(const std::string& api_url);

// The Authorization header value for HTTP basic authentication: "Basic base64(user:password)".
std::string basicAuthorization(const ApiCredentials& credentials);

struct ApiAnswer {
  int status = 0;
  std::string body;
  HttpHeaders headers = {};  // as received (the broker's Retry-After, for one)
};

class MemberApi {
 public:
  virtual ~MemberApi() = default;
  // Sends one request and returns the answer, whatever its status. Fails only when no answer came
  // within `timeout` (kIo: unreachable, refused, reset; kTimeout). Never retries.
  virtual Result<ApiAnswer> send(const ApiAddress& address, const std::string& method,
                                 const std::string& path, const HttpHeaders& headers,
                                 const std::string& body, Millis timeout) = 0;
};

// MemberApi over HttpConnection: a new connection for every request, closed after the answer.
class HttpMemberApi final : public MemberApi {
 public:
  Result<ApiAnswer> send(const ApiAddress& address, const std::string& method,
                         const std::string& path, const HttpHeaders& headers,
                         const std::string& body, Millis timeout) override;
};

// One request as the verbs make it: a non-empty body is sent as application/json, and mutating
// methods (anything but GET and HEAD) carry `credentials` when there are some. A 401 answer
// becomes an error (kInvalidArgument) naming the URL: "the REST API at http://127.0.0.1:8008
// refused the credentials (401): give -c with restapi.authentication". A failed transport keeps
// its code (kIo, kTimeout) and gains the request as context ("POST http://127.0.0.1:8008/
// switchover: ..."). Any other status is returned for the verb to judge.
Result<ApiAnswer> callMemberApi(MemberApi& api, const ApiAddress& address,
                                const ApiCredentials& credentials, const std::string& method,
                                const std::string& path, const std::string& body, Millis timeout);

// True for the errors of callMemberApi that mean "this member did not answer" (another member may).
bool isUnreachable(const Error& error);

// An answer's body for a message: without surrounding white space, on one line; of a JSON object
// with an "error" (or else "message") string, that string.
std::string answerText(const std::string& body);

}  // namespace pgf::ctl
