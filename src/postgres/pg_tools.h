// Running PostgreSQL's programs (initdb, pg_ctl, pg_basebackup, pg_rewind, postgres --single) from
// the configured bin_dir as the current user, always under LC_ALL=C so their messages can be
// matched. A failure's message carries the program's own output, redacted and shortened.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/process.h"
#include "common/result.h"

namespace pgf {

struct PgTool {
  std::string bin_dir;
  std::map<std::string, std::string> env;  // added to the environment (PGPASSFILE, ...)
};

// Runs `<bin_dir>/<program> args...`; an error when it could not start, timed out or exited
// non-zero. On success the result holds its output.
Result<CommandResult> runPgTool(const PgTool& tool, const std::string& program,
                                const std::vector<std::string>& args, Millis timeout,
                                const std::string& stdin_data = "");

// The tail of a program's output for an error message: redacted, trimmed, at most ~2000 bytes.
std::string outputForError(std::string_view output);

}  // namespace pgf
