// A MemberApi for pgfleetctl's unit tests: records every request and answers from a script, so
// verbs are tested without sockets.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctl/rest_client.h"

namespace pgf::ctl {

struct SentRequest {
  std::string url;  // base URL + path
  std::string method;
  std::string body;
  HttpHeaders headers;
  Millis timeout;

  nlohmann::json bodyJson() const {
    return body.empty() ? nlohmann::json() : nlohmann::json::parse(body, nullptr, false);
  }
};

// The value of the first header named `name` (as sent: exact case), "" when there is none.
inline std::string headerOf(const HttpHeaders& headers, const std::string& name) {
  for (const auto& [k, v] : headers)
    if (k == name)
      return v;
  return "";
}

class ScriptedApi final : public MemberApi {
 public:
  using Script = std::function<Result<ApiAnswer>(const SentRequest&)>;
  explicit ScriptedApi(Script script) : script_(std::move(script)) {}

  Result<ApiAnswer> send(const ApiAddress& address, const std::string& method,
                         const std::string& path, const HttpHeaders& headers,
                         const std::string& body, Millis timeout) override {
    sent.push_back({address.base_url + path, method, body, headers, timeout});
    return script_(sent.back());
  }

  std::vector<std::string> urls() const {
    std::vector<std::string> out;
    for (const auto& s : sent)
      out.push_back(s.url);
    return out;
  }

  std::vector<SentRequest> sent;

 private:
  Script script_;
};

// A member key as an agent writes it, with its PostgreSQL port 2576 below its REST API port.
inline std::string fakeMemberKey(int api_port, const std::string& role) {
  return nlohmann::json{
      {"conn_url", "postgres://127.0.0.1:" + std::to_string(api_port - 2576) + "/postgres"},
      {"api_url", "http://127.0.0.1:" + std::to_string(api_port) + "/patroni"},
      {"state", role == "master" ? "running" : "streaming"},
      {"role", role},
      {"timeline", 1}}
      .dump();
}

}  // namespace pgf::ctl
