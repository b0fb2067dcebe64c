// The Open Service Broker API's HTTP surface (../shared/OSB.md). Every request passes the
// transport rules of §1 before it reaches an endpoint:
//   - HTTP basic authentication: anything else is 401 (with WWW-Authenticate), checked first, so
//     that nothing is told to a client without the credentials;
//   - X-Broker-API-Version: 2.13 or later in 2.x; missing, empty, malformed or older is 412;
//   - X-Broker-API-Request-Identity is echoed on the answer (deferred ones included);
//   - a PUT or PATCH body sent with a Content-Type other than application/json is 400;
//   - every answer with a body is JSON, errors as {"error": "CamelCaseCode", "description": "..."}
//     (the code only where the spec names one) and an unknown path is a JSON 404.
// Endpoints: GET /v2/catalog; with an InstanceService, /v2/service_instances/:id (PUT, PATCH,
// DELETE, GET), its last_operation, and its service_bindings/:binding_id (PUT, DELETE, GET) with
// theirs. With a FleetApi, the broker's own read-only endpoints under /pgfleet/v1/ (fleet_api.h):
// authenticated like the rest, but not OSB, so they need no X-Broker-API-Version.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "broker/catalog.h"
#include "broker/fleet_api.h"
#include "broker/instances.h"
#include "common/http_server.h"

namespace pgf {

// The oldest X-Broker-API-Version accepted (platforms still send 2.13 and 2.14).
inline constexpr int kOsbMinMinor = 13;

// (major, minor) of an X-Broker-API-Version value ("2.17"); nullopt unless it is two decimal
// numbers joined by a dot.
std::optional<std::pair<int, int>> parseApiVersion(std::string_view text);

// A JSON error answer; `code` may be "" (the body then carries only the description).
HttpReply osbError(int status, std::string_view code, std::string_view description);

// `text` as a JSON string literal, for messages and logs: bytes that are not UTF-8 become U+FFFD
// instead of throwing, so that a hostile header, path or query value cannot turn an answer into
// a 500.
std::string jsonQuoted(std::string_view text);

// Whether `id` may name an instance, a binding or an operation: 1 to 1024 bytes of UTF-8 without
// control characters (ids are stored and logged as data, never used in a path, command or SQL).
bool acceptableId(std::string_view id);

// X-Broker-API-Originating-Identity ("<platform> <base64 of a JSON object>"), kept with the
// operation a request starts and logged with it, for audit: {"platform": ..., "identity": {...}},
// with "identity": null when the value is not base64 JSON; null without the header.
nlohmann::json originatingIdentity(const HttpRequest& req);

// The same as one line for the log (" requested by \"cloudfoundry\" {\"user_id\":...}"), or "".
std::string requestedBy(const nlohmann::json& identity);

class OsbApi {
 public:
  OsbApi(Catalog catalog, std::string username, std::string password,
         InstanceService* instances = nullptr, const FleetApi* fleet = nullptr);

  // Answers one request; never throws (an internal failure is a JSON 500).
  HttpReply handle(const HttpRequest& req) const;

 private:
  HttpReply route(const HttpRequest& req) const;
  HttpReply routeInstances(const HttpRequest& req) const;

  Catalog catalog_;
  std::string catalog_body_;  // the catalog never changes while the broker runs
  std::string username_;
  std::string password_;
  InstanceService* instances_;
  const FleetApi* fleet_;
};

}  // namespace pgf
