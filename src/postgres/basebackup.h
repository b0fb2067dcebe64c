// pg_basebackup of a running server into an empty data directory: WAL streamed alongside (the
// copy is consistent on its own), an immediate checkpoint on the source (the copy starts now, not
// at the source's next scheduled checkpoint). The password comes from PGPASSFILE.
#pragma once

#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "postgres/pg_tools.h"

namespace pgf {

// Refuses a non-empty `data_dir`; creates it 0700. On failure the partial copy stays where it is
// (--no-clean): only the caller may decide to remove a data directory.
Status runBaseBackup(const PgTool& tool, const std::string& data_dir,
                     const std::string& source_conninfo, Millis timeout);

}  // namespace pgf
