// Free TCP ports on 127.0.0.1 for processes a test starts. The ports are free when returned; a
// process that binds them shortly after almost always gets them (the kernel hands out ephemeral
// ports in sequence, so a just-released one is not reused at once).
#pragma once

#include <vector>

namespace pgf::testing {

// `count` distinct ports, all free at the time of the call.
std::vector<int> pickFreePorts(int count);
int pickFreePort();

}  // namespace pgf::testing
