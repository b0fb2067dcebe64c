// Talking to pgfleet-broker from pgfleetctl: where the broker is and who pgfleetctl is to it
// (--broker, --password-file and the PGFLEET_BROKER_* environment), and one request as the broker
// verbs make it: X-Broker-API-Version 2.17 and HTTP basic authentication on every request, JSON
// bodies, and the broker's refusals turned into sentences an operator can act on.
//
// Never: print or log the password, retry a request that changes something, or follow a redirect.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/result.h"
#include "ctl/rest_client.h"

namespace pgf::ctl {

inline constexpr const char* kDefaultBrokerUrl = "http://127.0.0.1:8080";
inline constexpr const char* kDefaultBrokerUser = "broker";
// Where the README's local setup (scripts/start.sh) keeps the broker's password.
inline constexpr const char* kDefaultBrokerPasswordFile = "/var/lib/pgfleet/broker.password";
inline constexpr const char* kBrokerApiVersion = "2.17";

// What the command line says; an empty field falls back to the environment, then the default.
struct BrokerOptions {
  std::string url;            // --broker; PGFLEET_BROKER_URL; kDefaultBrokerUrl
  std::string username;       // PGFLEET_BROKER_USER; kDefaultBrokerUser
  std::string password_file;  // --password-file; else PGFLEET_BROKER_PASSWORD; else the default
                              // file when it can be read; else no password
};

struct BrokerTarget {
  ApiAddress address;
  ApiCredentials credentials;
  std::string password_source;  // for messages: "--password-file x", "PGFLEET_BROKER_PASSWORD",
                                // the default file's path, or "" (no password)
};

// Reads an environment variable ("" when unset); getenv in pgfleetctl, a map in tests.
using Environment = std::function<std::string(const char* name)>;
Environment processEnvironment();

// Errors (kInvalidArgument, kConfig) for a URL that is not http://host[:port], or a password file
// that cannot be read ("--password-file /x: cannot read it: No such file or directory") or is
// empty. The file's content without its trailing newline is the password.
Result<BrokerTarget> resolveBroker(
    const BrokerOptions& options, const Environment& env,
    const std::string& default_password_file = kDefaultBrokerPasswordFile);

// One answer of the broker, with its body parsed (null when it is not JSON).
struct BrokerAnswer {
  int status = 0;
  nlohmann::json body;
  std::string text;         // the body as received
  std::string retry_after;  // the Retry-After header, "" when none
};

class BrokerClient {
 public:
  // `timeout` bounds each request.
  BrokerClient(MemberApi& api, BrokerTarget target, Millis timeout)
      : api_(api), target_(std::move(target)), timeout_(timeout) {}

  // Sends one request (a non-null `body` as JSON) and returns the answer, whatever its status,
  // except: no answer (kIo, kTimeout: "the broker at http://127.0.0.1:8080 is unreachable: ...")
  // and 401 (kInvalidArgument: "the broker at ... refused the credentials of user broker (401):
  // ..."), which become errors.
  Result<BrokerAnswer> call(const std::string& method, const std::string& path,
                            const nlohmann::json& body = nullptr);

  // GET /v2/catalog (an error unless 200 with a JSON object).
  Result<nlohmann::json> catalog();
  // GET /pgfleet/v1/instances/:id: the instance as the broker's store has it; nullopt when the
  // broker does not know it.
  Result<std::optional<nlohmann::json>> instance(const std::string& instance_id);
  // The same, but an instance the broker does not know is an error (kNotFound): "the broker has
  // no instance \"mydb\"".
  Result<nlohmann::json> existingInstance(const std::string& instance_id);

  const BrokerTarget& target() const { return target_; }

 private:
  MemberApi& api_;
  BrokerTarget target_;
  Millis timeout_;
};

// "/v2/service_instances/<id>" with the id percent-encoded; `rest` is appended as it is.
std::string instancePath(const std::string& instance_id, const std::string& rest = "");

// A refusal for a message: "422 ConcurrencyError: an operation on this instance is in progress";
// the body's description (or its text, on one line) after the status and the OSB error code.
std::string refusalText(const BrokerAnswer& answer);

// An error for an answer the verb did not expect: "<doing>: <refusalText>" (kInvalidArgument).
Error refusal(const std::string& doing, const BrokerAnswer& answer);

}  // namespace pgf::ctl
