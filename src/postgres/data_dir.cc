#include "postgres/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "common/process.h"

namespace pgf {
namespace {

Error ioError(std::string_view what, const std::string& path, int err) {
  return makeError(ErrorCode::kIo, fmt::format("{} {}: {}", what, path, strerror(err)));
}

}  // namespace

std::optional<PostmasterPid> parsePostmasterPid(std::string_view text) {
  std::vector<std::string> lines;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  if (lines.empty())
    return std::nullopt;
  PostmasterPid p;
  p.pid = std::atoi(lines[0].c_str());
  if (p.pid <= 0)
    return std::nullopt;
  auto at = [&](size_t i) { return i < lines.size() ? lines[i] : std::string(); };
  p.data_dir = at(1);
  p.port = std::atoi(at(3).c_str());
  p.socket_dir = at(4);
  p.listen_addr = at(5);
  p.status = at(7);
  while (!p.status.empty() && p.status.back() == ' ')
    p.status.pop_back();
  return p;
}

std::optional<PostmasterPid> readPostmasterPid(const std::string& data_dir) {
  auto text = readFile(data_dir + "/postmaster.pid");
  if (!text.ok())
    return std::nullopt;
  return parsePostmasterPid(*text);
}

bool postmasterAlive(int pid) {
  if (!processAlive(pid))
    return false;
  // Where /proc is readable, a reused pid shows another program's name.
  auto comm = readFile(fmt::format("/proc/{}/comm", pid));
  if (!comm.ok())
    return true;
  return comm->rfind("postgres", 0) == 0 || comm->rfind("postmaster", 0) == 0;
}

bool fileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return ioError("reading", path, errno ? errno : ENOENT);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status writeFileAtomically(const std::string& path, std::string_view content, mode_t mode) {
  std::string tmp = path + ".pgfleet-tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return ioError("creating", tmp, errno);
  // open() applies the umask; the mode must be exact (a password file is refused if too open).
  if (::fchmod(fd, mode) != 0) {
    int err = errno;
    ::close(fd);
    return ioError("setting the mode of", tmp, err);
  }
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ioError("writing", tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ioError("flushing", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ioError("renaming to", path, err);
  }
  return okStatus();
}

Status removeFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return ioError("removing", path, errno);
  return okStatus();
}

Status forgetArchivedSegments(const std::string& data_dir) {
  const std::string dir = data_dir + "/pg_wal/archive_status";
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec))
    return okStatus();
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".done")
      PGF_TRY(removeFile(entry.path().string()), "forgetting archived segments");
  }
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("listing {}: {}", dir, ec.message()));
  return okStatus();
}

Status removeTree(const std::string& path) {
  auto normal = std::filesystem::path(path).lexically_normal();
  if (path.empty() || normal.relative_path().empty() || normal == "." || normal == "..")
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("refusing to remove directory \"{}\"", path));
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec)
    return makeError(ErrorCode::kIo, fmt::format("removing {}: {}", path, ec.message()));
  return okStatus();
}

}  // namespace pgf
