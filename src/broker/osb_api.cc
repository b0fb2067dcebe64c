#include "broker/osb_api.h"

#include <charconv>
#include <exception>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/basic_auth.h"

namespace pgf {
namespace {

constexpr size_t kMaxRequestIdentity = 256;

HttpReply json(int status, const nlohmann::json& body) {
  return HttpReply{status, "application/json", body.dump(), {}};
}

// A request identity fit to be sent back: printable ASCII, bounded.
bool echoable(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdentity)
    return false;
  for (char c : id)
    if (c < 0x20 || c > 0x7e)
      return false;
  return true;
}

}  // namespace

std::optional<std::pair<int, int>> parseApiVersion(std::string_view text) {
  const size_t dot = text.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size())
    return std::nullopt;
  auto number = [](std::string_view s) -> std::optional<int> {
    int v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < 0)
      return std::nullopt;
    return v;
  };
  auto major = number(text.substr(0, dot));
  auto minor = number(text.substr(dot + 1));
  if (!major || !minor)
    return std::nullopt;
  return std::make_pair(*major, *minor);
}

HttpReply osbError(int status, std::string_view code, std::string_view description) {
  nlohmann::json body = nlohmann::json::object();
  if (!code.empty())
    body["error"] = code;
  body["description"] = description;
  return json(status, body);
}

OsbApi::OsbApi(Catalog catalog, std::string username, std::string password)
    : catalog_(std::move(catalog)),
      catalog_body_(catalog_.toJson().dump()),
      username_(std::move(username)),
      password_(std::move(password)) {}

HttpReply OsbApi::handle(const HttpRequest& req) const {
  HttpReply reply;
  try {
    reply = route(req);
  } catch (const std::exception& e) {
    spdlog::error("{} {}: {}", req.method, req.path, e.what());
    reply = osbError(500, "", fmt::format("internal error answering {} {}", req.method, req.path));
  }
  if (const std::string id = req.header("x-broker-api-request-identity"); echoable(id))
    reply.headers["X-Broker-API-Request-Identity"] = id;
  return reply;
}

HttpReply OsbApi::route(const HttpRequest& req) const {
  if (!basicAuthMatches(req.header("authorization"), username_, password_)) {
    HttpReply r = osbError(401, "",
                           "this broker needs HTTP basic authentication with its "
                           "username and password");
    r.headers["WWW-Authenticate"] = "Basic realm=\"pgfleet-broker\"";
    return r;
  }
  const std::string given = req.header("x-broker-api-version");
  auto version = parseApiVersion(given);
  if (!version || version->first != 2 || version->second < kOsbMinMinor)
    return osbError(
        412, "",
        given.empty()
            ? fmt::format("the X-Broker-API-Version header is missing: this broker speaks the "
                          "Open Service Broker API 2.{} and later (2.17)",
                          kOsbMinMinor)
            : fmt::format("X-Broker-API-Version {} is not supported: this broker speaks 2.{} and "
                          "later (2.17)",
                          nlohmann::json(given).dump(), kOsbMinMinor));

  if (req.path == "/v2/catalog") {
    if (req.method != "GET") {
      HttpReply r = osbError(405, "", fmt::format("{} is not allowed on /v2/catalog", req.method));
      r.headers["Allow"] = "GET";
      return r;
    }
    return HttpReply{200, "application/json", catalog_body_, {}};
  }
  return osbError(
      404, "", fmt::format("no such endpoint: {} {}", req.method, nlohmann::json(req.path).dump()));
}

}  // namespace pgf
