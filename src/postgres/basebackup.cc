#include "postgres/basebackup.h"

#include <filesystem>

#include <fmt/format.h>

namespace pgf {

Status runBaseBackup(const PgTool& tool, const std::string& data_dir,
                     const std::string& source_conninfo, Millis timeout) {
  std::error_code ec;
  if (std::filesystem::exists(data_dir, ec) && !std::filesystem::is_empty(data_dir, ec))
    return makeError(ErrorCode::kAlreadyExists, fmt::format("{} is not empty", data_dir));
  std::filesystem::create_directories(data_dir, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("creating {}: {}", data_dir, ec.message()));
  // PostgreSQL refuses a data directory others can read.
  std::filesystem::permissions(data_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("chmod {}: {}", data_dir, ec.message()));
  auto run = runPgTool(tool, "pg_basebackup",
                       {"--pgdata=" + data_dir, "--wal-method=stream", "--checkpoint=fast",
                        "--no-password", "--no-clean", "--dbname=" + source_conninfo},
                       timeout);
  if (!run.ok())
    return run.error();
  return okStatus();
}

}  // namespace pgf
