// Writes the files config_files.h renders into a data directory: the password file, then
// postgresql.conf (moving initdb's own to postgresql.base.conf the first time), pg_hba.conf, and
// the signal file that makes the server a standby (standby.signal) or a primary (none).
// Every file is written atomically with mode 0600.
#pragma once

#include <string>

#include "common/result.h"
#include "postgres/config_files.h"

namespace pgf {

// Creates the file's directory when missing.
Status writePgpassFile(const PostgresConfig& pg, const std::string& path);

// A standby when ctx.upstream is set, else a primary.
Status writeConfigFiles(const ConfigContext& ctx);

}  // namespace pgf
