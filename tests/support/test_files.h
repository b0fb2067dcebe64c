// Small helpers the process fixtures share: the last lines of a log file, and a random password
// for the servers a test starts.
#pragma once

#include <string>

namespace pgf::testing {

// The last `lines` lines of the file at `path`, each ending in '\n' ("" when it cannot be read).
std::string fileTail(const std::string& path, int lines);

// 24 random letters and digits (no look-alikes).
std::string randomPassword();

}  // namespace pgf::testing
