#include "postgres/initdb.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "postgres/data_dir.h"

namespace pgf {
namespace {

// Whether `options` already choose the authentication method that `long_name` sets.
bool choosesAuth(const std::vector<std::string>& options, std::string_view long_name) {
  for (const auto& o : options) {
    if (o.rfind(long_name, 0) == 0 || o == "--auth" || o.rfind("--auth=", 0) == 0 ||
        o.rfind("-A", 0) == 0)
      return true;
  }
  return false;
}

// Removes a file when it goes out of scope: the superuser password must not outlive initdb.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!path_.empty())
      ignoreError(removeFile(path_), "best effort: the directory is private to the database user");
  }

 private:
  std::string path_;
};

}  // namespace

std::vector<std::string> initdbArguments(const std::string& data_dir, const std::string& superuser,
                                         const std::string& pwfile,
                                         const std::vector<std::string>& options) {
  std::vector<std::string> args = {"-D", data_dir, "-U", superuser};
  if (!pwfile.empty())
    args.push_back(fmt::format("--pwfile={}", pwfile));
  args.insert(args.end(), options.begin(), options.end());
  if (!choosesAuth(options, "--auth-local"))
    args.push_back("--auth-local=trust");
  if (!choosesAuth(options, "--auth-host"))
    args.push_back("--auth-host=scram-sha-256");
  return args;
}

Status runInitdb(const PgTool& tool, const std::string& data_dir, const PgUser& superuser,
                 const std::vector<std::string>& options, Millis timeout) {
  std::filesystem::path parent_path = std::filesystem::path(data_dir).parent_path();
  const std::string parent = parent_path.empty() ? std::string(".") : parent_path.string();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("creating {}: {}", parent, ec.message()));
  std::string pwfile;
  if (!superuser.password.empty()) {
    // mkstemp creates the file 0600, outside the data directory initdb wants empty.
    std::string tmpl = parent + "/.pgfleet-pwfile-XXXXXX";
    int fd = mkstemp(tmpl.data());
    if (fd < 0)
      return makeError(ErrorCode::kIo, fmt::format("creating a password file in {}", parent));
    pwfile = tmpl;
    std::string line = superuser.password + "\n";
    bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!written) {
      ignoreError(removeFile(pwfile), "already failing");
      return makeError(ErrorCode::kIo, fmt::format("writing {}", pwfile));
    }
  }
  TempFile remove_pwfile(pwfile);
  spdlog::info("running initdb in {}", data_dir);
  auto run = runPgTool(tool, "initdb",
                       initdbArguments(data_dir, superuser.username, pwfile, options), timeout);
  if (!run.ok())
    return run.error();
  return okStatus();
}

}  // namespace pgf
