#include "ctl/broker_client.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/http_message.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

// The whole file, or nullopt with errno's sentence in *why.
std::optional<std::string> readWhole(const std::string& path, std::string* why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string withoutTrailingNewlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

}  // namespace

Environment processEnvironment() {
  return [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v == nullptr ? "" : v);
  };
}

Result<BrokerTarget> resolveBroker(const BrokerOptions& options, const Environment& env,
                                   const std::string& default_password_file) {
  BrokerTarget t;
  std::string url = options.url;
  if (url.empty())
    url = env("PGFLEET_BROKER_URL");
  if (url.empty())
    url = kDefaultBrokerUrl;
  while (url.size() > 1 && url.back() == '/')
    url.pop_back();
  auto address = parseApiUrl(url);
  if (!address.ok())
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("broker URL {}: {}", json(url).dump(), address.error().message));
  if (address->base_url != url)
    return makeError(
        ErrorCode::kInvalidArgument,
        fmt::format("broker URL {} has a path: give http://host:port", json(url).dump()));
  t.address = *address;

  t.credentials.username = options.username.empty() ? env("PGFLEET_BROKER_USER") : options.username;
  if (t.credentials.username.empty())
    t.credentials.username = kDefaultBrokerUser;

  std::string why;
  if (!options.password_file.empty()) {
    auto text = readWhole(options.password_file, &why);
    if (!text)
      return makeError(ErrorCode::kConfig, fmt::format("--password-file {}: cannot read it: {}",
                                                       options.password_file, why));
    t.credentials.password = withoutTrailingNewlines(*text);
    if (t.credentials.password.empty())
      return makeError(ErrorCode::kConfig,
                       fmt::format("--password-file {}: the file is empty", options.password_file));
    t.password_source = "--password-file " + options.password_file;
  } else if (std::string p = env("PGFLEET_BROKER_PASSWORD"); !p.empty()) {
    t.credentials.password = p;
    t.password_source = "PGFLEET_BROKER_PASSWORD";
  } else if (!default_password_file.empty()) {
    // The local setup's file, when this user may read it; no password otherwise.
    if (auto text = readWhole(default_password_file, &why)) {
      t.credentials.password = withoutTrailingNewlines(*text);
      if (!t.credentials.password.empty())
        t.password_source = default_password_file;
    }
  }
  return t;
}

std::string instancePath(const std::string& instance_id, const std::string& rest) {
  return "/v2/service_instances/" + percentEncode(instance_id) + rest;
}

Result<BrokerAnswer> BrokerClient::call(const std::string& method, const std::string& path,
                                        const json& body) {
  HttpHeaders headers = {{"X-Broker-API-Version", kBrokerApiVersion},
                         {"Authorization", basicAuthorization(target_.credentials)},
                         {"Accept", "application/json"}};
  const std::string payload = body.is_null() ? "" : body.dump();
  if (!payload.empty())
    headers.emplace_back("Content-Type", "application/json");
  auto sent = api_.send(target_.address, method, path, headers, payload, timeout_);
  if (!sent.ok())
    return makeError(sent.error().code,
                     fmt::format("the broker at {} is unreachable ({} {}: {}): is pgfleet-broker "
                                 "running there? (--broker, PGFLEET_BROKER_URL)",
                                 target_.address.base_url, method, path, sent.error().message));
  if (sent->status == 401)
    return makeError(
        ErrorCode::kInvalidArgument,
        fmt::format("the broker at {} refused the credentials of user {} (401): {}",
                    target_.address.base_url, target_.credentials.username,
                    target_.password_source.empty()
                        ? "no password was given: use --password-file or PGFLEET_BROKER_PASSWORD"
                        : "check the password from " + target_.password_source));
  BrokerAnswer a;
  a.status = sent->status;
  a.text = std::move(sent->body);
  a.body = json::parse(a.text, nullptr, false);
  if (a.body.is_discarded())
    a.body = nullptr;
  for (const auto& [name, value] : sent->headers)
    if (equalsIgnoreCase(name, "Retry-After"))
      a.retry_after = value;
  return a;
}

Result<json> BrokerClient::catalog() {
  auto a = call("GET", "/v2/catalog");
  if (!a.ok())
    return a.error();
  if (a->status != 200 || !a->body.is_object())
    return refusal("reading the catalog", *a);
  return a->body;
}

Result<std::optional<json>> BrokerClient::instance(const std::string& instance_id) {
  auto a = call("GET", "/pgfleet/v1/instances/" + percentEncode(instance_id));
  if (!a.ok())
    return a.error();
  // The endpoint's own 404 names the instance; a broker without the endpoint says "no such
  // endpoint", which is a refusal like any other.
  if (a->status == 404 && a->body.is_object() && a->body.contains("description") &&
      a->body.value("description", "").rfind("no instance", 0) == 0)
    return std::optional<json>();
  if (a->status != 200 || !a->body.is_object())
    return refusal(fmt::format("reading instance {}", instance_id), *a);
  return std::optional<json>(a->body);
}

Result<json> BrokerClient::existingInstance(const std::string& instance_id) {
  auto found = instance(instance_id);
  if (!found.ok())
    return found.error();
  if (!found->has_value())
    return makeError(ErrorCode::kNotFound,
                     fmt::format("the broker has no instance {}", json(instance_id).dump()));
  return **found;
}

std::string refusalText(const BrokerAnswer& answer) {
  std::string text = std::to_string(answer.status);
  if (answer.body.is_object()) {
    const std::string code = answer.body.value("error", "");
    const std::string description = answer.body.value("description", "");
    if (!code.empty())
      text += " " + code;
    if (!description.empty())
      return text + ": " + description;
  }
  const std::string body = answerText(answer.text);
  return body.empty() || body == "{}" ? text : text + ": " + body;
}

Error refusal(const std::string& doing, const BrokerAnswer& answer) {
  return makeError(ErrorCode::kInvalidArgument, doing + ": " + refusalText(answer));
}

}  // namespace pgf::ctl
