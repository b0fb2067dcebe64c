// Files in and around a PostgreSQL data directory: postmaster.pid, signal files, the files pgfleet
// writes (atomically: a reader, PostgreSQL included, sees the old or the new file, never half of
// one) and the removal of the whole tree. Errors are kIo with the path in the message.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace pgf {

// The lines of postmaster.pid PostgreSQL documents (pidfile.h); fields it has not written yet are
// empty / 0.
struct PostmasterPid {
  int pid = 0;
  std::string data_dir;
  int port = 0;
  std::string socket_dir;   // first of unix_socket_directories ("" when none)
  std::string listen_addr;  // first of listen_addresses
  std::string status;       // "starting", "stopping", "ready", "standby"
};

std::optional<PostmasterPid> parsePostmasterPid(std::string_view text);
std::optional<PostmasterPid> readPostmasterPid(const std::string& data_dir);

// A live process with that pid that looks like a postmaster (guards against a stale
// postmaster.pid whose pid was reused by another program).
bool postmasterAlive(int pid);

bool fileExists(const std::string& path);
Result<std::string> readFile(const std::string& path);
// Writes `content` to a temporary file in the same directory with `mode`, then renames it over
// `path`.
Status writeFileAtomically(const std::string& path, std::string_view content, mode_t mode);
// Removes a file; success when it does not exist.
Status removeFile(const std::string& path);
// Removes pg_wal/archive_status/*.done, so that with archive_mode=on every segment counts as not
// yet archived and no checkpoint recycles it (the archiver may later archive some twice).
Status forgetArchivedSegments(const std::string& data_dir);
// Removes a directory tree; refuses "", "/" (or any root) and "." / "..".
Status removeTree(const std::string& path);

}  // namespace pgf
