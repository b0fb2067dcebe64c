#include "broker/osb_api.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <exception>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/basic_auth.h"
#include "common/http_message.h"

namespace pgf {
namespace {

constexpr size_t kMaxRequestIdentity = 256;
constexpr size_t kMaxOriginatingIdentity = 4096;

// Bytes that are not UTF-8 (from a hostile request, quoted in a message) become U+FFFD.
HttpReply json(int status, const nlohmann::json& body) {
  return HttpReply{status,
                   "application/json",
                   body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                   {}};
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

constexpr std::string_view kInstancesPrefix = "/v2/service_instances/";
constexpr size_t kMaxIdLength = 1024;

// The path's segments, each %-decoded on its own: an id holding an encoded "/"
// stays one id. nullopt on a bad %-escape.
std::optional<std::vector<std::string>> splitPath(std::string_view rest) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = rest.find('/', start);
    std::string part;
    if (!percentDecode(rest.substr(start, slash == std::string_view::npos ? slash : slash - start),
                       &part))
      return std::nullopt;
    parts.push_back(std::move(part));
    if (slash == std::string_view::npos)
      return parts;
    start = slash + 1;
  }
}

HttpReply notAllowed(const HttpRequest& req, const char* allow) {
  HttpReply r = osbError(405, "", fmt::format("{} is not allowed here", req.method));
  r.headers["Allow"] = allow;
  return r;
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

std::string jsonQuoted(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool acceptableId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength)
    return false;
  for (char c : id)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return false;
  try {
    (void)nlohmann::json(std::string(id)).dump();  // throws on bytes that are not UTF-8
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

nlohmann::json originatingIdentity(const HttpRequest& req) {
  const std::string header = req.header("x-broker-api-originating-identity");
  if (header.empty())
    return nullptr;
  const size_t space = header.find(' ');
  nlohmann::json out = {{"platform", header.substr(0, std::min(space, size_t{64}))},
                        {"identity", nullptr}};
  if (space != std::string::npos && header.size() <= kMaxOriginatingIdentity) {
    auto decoded = base64Decode(std::string_view(header).substr(space + 1));
    if (decoded) {
      auto doc = nlohmann::json::parse(*decoded, nullptr, false);
      if (doc.is_object())
        out["identity"] = std::move(doc);
    }
  }
  // Stored and logged as JSON: bytes that are not UTF-8 become U+FFFD.
  return nlohmann::json::parse(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::string requestedBy(const nlohmann::json& identity) {
  if (!identity.is_object())
    return "";
  return fmt::format(" requested by {} {}", jsonQuoted(identity.value("platform", "")),
                     identity["identity"].dump());
}

HttpReply osbError(int status, std::string_view code, std::string_view description) {
  nlohmann::json body = nlohmann::json::object();
  if (!code.empty())
    body["error"] = code;
  body["description"] = description;
  return json(status, body);
}

OsbApi::OsbApi(Catalog catalog, std::string username, std::string password,
               InstanceService* instances, const FleetApi* fleet)
    : catalog_(std::move(catalog)),
      catalog_body_(catalog_.toJson().dump()),
      username_(std::move(username)),
      password_(std::move(password)),
      instances_(instances),
      fleet_(fleet) {}

HttpReply OsbApi::handle(const HttpRequest& req) const {
  HttpReply reply;
  try {
    reply = route(req);
  } catch (const std::exception& e) {
    spdlog::error("{} {}: {}", req.method, req.path, e.what());
    reply = osbError(500, "", fmt::format("internal error answering {} {}", req.method, req.path));
  }
  if (const std::string id = req.header("x-broker-api-request-identity"); echoable(id)) {
    reply.headers["X-Broker-API-Request-Identity"] = id;
    if (reply.deferred)
      reply.deferred = [work = std::move(reply.deferred), id] {
        HttpReply late = work();
        late.headers["X-Broker-API-Request-Identity"] = id;
        return late;
      };
  }
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
  if (fleet_ != nullptr && req.path.rfind(kFleetApiPrefix, 0) == 0)
    return fleet_->handle(req);
  if (fleet_ != nullptr && req.path == "/metrics" && req.method == "GET")
    return fleet_->metrics();
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
                          jsonQuoted(given), kOsbMinMinor));

  if (req.path == "/v2/catalog") {
    if (req.method != "GET") {
      HttpReply r = osbError(405, "", fmt::format("{} is not allowed on /v2/catalog", req.method));
      r.headers["Allow"] = "GET";
      return r;
    }
    return HttpReply{200, "application/json", catalog_body_, {}};
  }
  if (instances_ != nullptr && req.path.rfind(kInstancesPrefix, 0) == 0)
    return routeInstances(req);
  return osbError(404, "",
                  fmt::format("no such endpoint: {} {}", req.method, jsonQuoted(req.path)));
}

HttpReply OsbApi::routeInstances(const HttpRequest& req) const {
  // Split before decoding: PUT .../a%2Fservice_bindings%2Fb provisions the instance "a/.../b";
  // it does not bind "b" to "a".
  const std::string_view raw = req.raw_path.empty() ? req.path : req.raw_path;
  auto split = splitPath(raw.substr(1));
  if (!split)
    return osbError(400, "", "the path has a malformed %-escape");
  if (split->size() < 3 || (*split)[0] != "v2" || (*split)[1] != "service_instances")
    return osbError(404, "",
                    fmt::format("no such endpoint: {} {}", req.method, jsonQuoted(req.path)));
  const std::vector<std::string> parts(split->begin() + 2, split->end());
  for (const auto& p : parts)
    if (!acceptableId(p))
      return osbError(400, "",
                      fmt::format("an id in the path is empty, longer than {} bytes, not UTF-8 or "
                                  "holds a control character",
                                  kMaxIdLength));
  if (req.method == "PUT" || req.method == "PATCH") {
    // Only the media type counts (case-insensitive), not its parameters; no header at all is
    // taken as JSON.
    std::string type = req.header("content-type");
    type = type.substr(0, type.find(';'));
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
      type.pop_back();
    for (char& c : type)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!type.empty() && type != "application/json")
      return osbError(400, "",
                      fmt::format("the request body must be JSON (Content-Type: "
                                  "application/json), not {}",
                                  jsonQuoted(type)));
  }
  const std::string& id = parts[0];
  if (parts.size() == 1) {
    if (req.method == "PUT")
      return instances_->provision(id, req);
    if (req.method == "PATCH")
      return instances_->update(id, req);
    if (req.method == "DELETE")
      return instances_->deprovision(id, req);
    if (req.method == "GET")
      return instances_->fetchInstance(id, req);
    return notAllowed(req, "PUT, PATCH, DELETE, GET");
  }
  if (parts.size() == 2 && parts[1] == "last_operation") {
    if (req.method != "GET")
      return notAllowed(req, "GET");
    return instances_->lastOperation(id, req);
  }
  if (parts.size() >= 3 && parts.size() <= 4 && parts[1] == "service_bindings") {
    const std::string& bid = parts[2];
    if (parts.size() == 4) {
      if (parts[3] != "last_operation")
        return osbError(404, "", "no such endpoint");
      if (req.method != "GET")
        return notAllowed(req, "GET");
      return instances_->bindingLastOperation(id, bid, req);
    }
    if (req.method == "PUT")
      return instances_->bind(id, bid, req);
    if (req.method == "DELETE")
      return instances_->unbind(id, bid, req);
    if (req.method == "GET")
      return instances_->fetchBinding(id, bid, req);
    return notAllowed(req, "PUT, DELETE, GET");
  }
  return osbError(404, "",
                  fmt::format("no such endpoint: {} {}", req.method, jsonQuoted(req.path)));
}

}  // namespace pgf
