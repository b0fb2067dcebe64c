#include "postgres/config_writer.h"

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "postgres/data_dir.h"

namespace pgf {

Status writePgpassFile(const PostgresConfig& pg, const std::string& path) {
  // Before a clone, nothing exists yet next to the data directory.
  auto dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty())
    std::filesystem::create_directories(dir, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("creating {}: {}", dir.string(), ec.message()));
  PGF_TRY(writeFileAtomically(path, renderPgpass(pg), 0600), "writing the password file");
  return okStatus();
}

Status writeConfigFiles(const ConfigContext& ctx) {
  if (ctx.data_dir.empty())
    return makeError(ErrorCode::kConfig, "postgresql.data_dir is not set");
  auto conf = renderPostgresqlConf(ctx);
  if (!conf.ok())
    return conf.error();
  PGF_TRY(writePgpassFile(*ctx.pg, ctx.pgpass_path), "writing configuration");
  const std::string conf_path = ctx.data_dir + "/postgresql.conf";
  const std::string base_path = ctx.data_dir + "/" + std::string(kBaseConfName);
  if (!fileExists(base_path)) {
    // initdb's postgresql.conf holds its locale and sizing choices: keep it, included first.
    auto existing = readFile(conf_path);
    if (existing.ok() && existing->rfind(kConfHeader, 0) != 0 &&
        std::rename(conf_path.c_str(), base_path.c_str()) != 0)
      return makeError(ErrorCode::kIo, fmt::format("renaming {} to {}", conf_path, base_path));
  }
  PGF_TRY(writeFileAtomically(conf_path, *conf, 0600), "writing postgresql.conf");
  PGF_TRY(writeFileAtomically(ctx.data_dir + "/pg_hba.conf", renderPgHba(*ctx.pg), 0600),
          "writing pg_hba.conf");
  if (ctx.upstream) {
    PGF_TRY(writeFileAtomically(ctx.data_dir + "/standby.signal", "", 0600),
            "writing standby.signal");
  } else {
    PGF_TRY(removeFile(ctx.data_dir + "/standby.signal"), "removing standby.signal");
    PGF_TRY(removeFile(ctx.data_dir + "/recovery.signal"), "removing recovery.signal");
  }
  return okStatus();
}

}  // namespace pgf
