#include "ctl/rest_client.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"

namespace pgf::ctl {
namespace {

Error badUrl(const std::string& api_url, const std::string& why) {
  return makeError(ErrorCode::kInvalidArgument,
                   fmt::format("api_url \"{}\" is not usable: {}", api_url, why));
}

}  // namespace

Result<ApiAddress> parseApiUrl(const std::string& api_url) {
  const std::string scheme = "http://";
  if (api_url.rfind("https://", 0) == 0)
    return badUrl(api_url, "pgfleetctl does not speak https");
  if (api_url.rfind(scheme, 0) != 0)
    return badUrl(api_url, "expected http://host:port/path");
  const std::string authority =
      api_url.substr(scheme.size(), api_url.find_first_of("/?#", scheme.size()) - scheme.size());
  if (authority.find('@') != std::string::npos)
    return badUrl(api_url, "credentials in the URL are not supported");

  ApiAddress a;
  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos)
      return badUrl(api_url, "unclosed [ in the host");
    a.host = authority.substr(1, close - 1);
    std::string rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return badUrl(api_url, "unexpected text after the host");
    port_text = rest.empty() ? "" : rest.substr(1);
  } else {
    auto colon = authority.find(':');
    a.host = authority.substr(0, colon);
    port_text = colon == std::string::npos ? "" : authority.substr(colon + 1);
  }
  if (a.host.empty())
    return badUrl(api_url, "no host");
  a.port = 80;
  if (!port_text.empty()) {
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), a.port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || a.port < 1 ||
        a.port > 65535)
      return badUrl(api_url, fmt::format("invalid port \"{}\"", port_text));
  }
  a.base_url = scheme + authority;
  return a;
}

std::string basicAuthorization(const ApiCredentials& credentials) {
  return "Basic " + base64Encode(credentials.username + ":" + credentials.password);
}

Result<ApiAnswer> HttpMemberApi::send(const ApiAddress& address, const std::string& method,
                                      const std::string& path, const HttpHeaders& headers,
                                      const std::string& body, Millis timeout) {
  HttpConnection http(address.host, address.port);
  HttpHeaders all = headers;
  all.emplace_back("Connection", "close");
  auto res = http.request(method, path, all, body, std::chrono::steady_clock::now() + timeout);
  if (!res.ok())
    return res.error();
  return ApiAnswer{res->status, std::move(res->body), std::move(res->headers)};
}

Result<ApiAnswer> callMemberApi(MemberApi& api, const ApiAddress& address,
                                const ApiCredentials& credentials, const std::string& method,
                                const std::string& path, const std::string& body, Millis timeout) {
  HttpHeaders headers;
  if (!body.empty())
    headers.emplace_back("Content-Type", "application/json");
  if (method != "GET" && method != "HEAD" && !credentials.empty())
    headers.emplace_back("Authorization", basicAuthorization(credentials));
  auto answer = api.send(address, method, path, headers, body, timeout);
  if (!answer.ok())
    return answer.error().wrap(fmt::format("{} {}{}", method, address.base_url, path));
  if (answer->status == 401)
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("the REST API at {} refused the credentials (401): give -c with "
                                 "restapi.authentication",
                                 address.base_url));
  return answer;
}

bool isUnreachable(const Error& error) {
  return error.code == ErrorCode::kIo || error.code == ErrorCode::kTimeout;
}

std::string answerText(const std::string& body) {
  // A JSON error document ({"error": "..."}, as the agent's /config answers, or {"description":
  // "..."}, as the HTTP layer refuses a request) gives its sentence.
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  for (const char* key : {"error", "description", "message"})
    if (doc.is_object() && doc.contains(key) && doc[key].is_string())
      return answerText(doc[key].get<std::string>());
  std::string out;
  for (char c : body)
    out.push_back(c == '\n' || c == '\r' ? ' ' : c);
  const auto first = out.find_first_not_of(" \t");
  if (first == std::string::npos)
    return "";
  return out.substr(first, out.find_last_not_of(" \t") + 1 - first);
}

}  // namespace pgf::ctl
