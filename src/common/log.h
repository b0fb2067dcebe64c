// Logging: spdlog, one line per event, to stderr. Secrets (passwords, connection strings with
// passwords) are never passed to a logger; use redact() on anything that might carry one.
#pragma once

#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace pgf {

// Sets the process-wide pattern and level ("debug", "info", "warning", "error").
void initLogging(std::string_view level, std::string_view component);

// Replaces password=... and the password part of a URL's userinfo with "***".
std::string redact(std::string_view text);

}  // namespace pgf
