// The PostgreSQL side of the broker (DESIGN.md, "Service provider interface"): what an instance
// needs inside PostgreSQL before it is handed out, how a binding becomes credentials, and how it
// is taken back. Every statement runs as the instance's superuser through its read-write
// endpoint; names and passwords are quoted by libpq, and statement logging is off in these
// sessions, so a password never reaches the server log.
//
//   - provision: a NOLOGIN owner role and the instance's database owned by it (with the requested
//     extensions), then readiness: a real write through the endpoint;
//   - bind: a LOGIN role with a random password, a member of the owner role whose sessions act
//     as the owner (objects it creates belong to the owner, so every binding can use them), never
//     a superuser, and able to connect only to the instance's database;
//   - unbind: its sessions terminated, what it still owns reassigned to the owner, the role
//     dropped.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/result.h"

namespace pgf {

struct InstanceAccess {
  std::string host = "127.0.0.1";
  int read_write_port = 0;
  int read_only_port = 0;  // 0: a single node, no read-only endpoint
  std::string superuser_password;
  std::string database;    // the instance's database
  std::string owner_role;  // owns the database and everything in it
};

// The database a pooled instance makes ahead of its claim, without an owner yet.
inline constexpr std::string_view kPooledDatabase = "pgfleet_pooled";

// Creates the owner role, the database and the extensions unless they exist (safe to repeat).
// The database is the one made ahead (kPooledDatabase), renamed and handed to the owner, when
// there is one.
Status prepareDatabase(const InstanceAccess& access, const std::vector<std::string>& extensions,
                       Millis timeout);
// Creates the extensions in the instance's database unless they exist: all or none.
Status createExtensions(const InstanceAccess& access, const std::vector<std::string>& extensions,
                        Millis timeout);
// A pooled instance's database, made ahead (safe to repeat).
Status prepareDatabaseAhead(const InstanceAccess& access, Millis timeout);

// A real write through the read-write endpoint (and, for a cluster, a read through the read-only
// one); an error says which endpoint failed.
Status checkReadiness(const InstanceAccess& access, Millis timeout);

// Whether the server at access.read_write_port runs with every one of these parameters' values
// (a change that needs a restart has reached it). Sizes compare by their bytes ("1GB" is
// "1024MB"). Passed as query parameters, never spliced into the SQL.
Result<bool> runsWith(const InstanceAccess& access,
                      const std::vector<std::pair<std::string, std::string>>& parameters,
                      Millis timeout);

// Creates the binding's role (or sets its password again when it exists: safe to repeat).
Status createBindingRole(const InstanceAccess& access, const std::string& role,
                         const std::string& password, Millis timeout);

// Terminates the role's sessions, reassigns what it owns to the owner role, drops it. Success
// when the role does not exist.
Status dropBindingRole(const InstanceAccess& access, const std::string& role, Millis timeout);

// Whether the role exists (for tests and for recovering an interrupted unbind).
Result<bool> roleExists(const InstanceAccess& access, const std::string& role, Millis timeout);

// The credentials a binding hands out: uri, jdbcUrl, hostname/host, port, name/database,
// username, password, read_only_uri (clusters), endpoints.
nlohmann::json bindingCredentials(const InstanceAccess& access, const std::string& role,
                                  const std::string& password);

// 32 random characters from letters and digits (a CSPRNG: getrandom).
std::string randomSecret(size_t length = 32);

// A lower-case name for a generated object: `prefix` and `length` random letters and digits.
std::string randomName(const std::string& prefix, size_t length);

}  // namespace pgf
