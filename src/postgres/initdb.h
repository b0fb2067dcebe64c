// initdb for a new cluster. The superuser's password reaches initdb through --pwfile, a 0600
// temporary file next to the data directory that is removed as soon as initdb returns; never
// through the command line or the environment.
#pragma once

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "postgres/pg_config.h"
#include "postgres/pg_tools.h"

namespace pgf {

// initdb's arguments: -D, -U, --pwfile (when `pwfile` is set), the configured options, then
// --auth-local=trust and --auth-host=scram-sha-256 unless the options choose authentication.
std::vector<std::string> initdbArguments(const std::string& data_dir, const std::string& superuser,
                                         const std::string& pwfile,
                                         const std::vector<std::string>& options);

// Creates the data directory's parent if needed and runs initdb.
Status runInitdb(const PgTool& tool, const std::string& data_dir, const PgUser& superuser,
                 const std::vector<std::string>& options, Millis timeout);

}  // namespace pgf
