#include "common/log.h"

#include <regex>

#include <spdlog/sinks/stdout_sinks.h>

namespace pgf {

void initLogging(std::string_view level, std::string_view component) {
  auto logger = spdlog::stderr_logger_mt(std::string(component));
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%n] %v");
  auto lvl = spdlog::level::from_str(std::string(level == "warning" ? "warn" : level));
  spdlog::set_level(lvl == spdlog::level::off && level != "off" ? spdlog::level::info : lvl);
  spdlog::flush_on(spdlog::level::info);
}

std::string redact(std::string_view text) {
  static const std::regex kv(R"((password\s*=\s*)('[^']*'|\S+))", std::regex::icase);
  static const std::regex url(R"((://[^:/@\s]+:)[^@\s]+@)");
  std::string s = std::regex_replace(std::string(text), kv, "$1***");
  return std::regex_replace(s, url, "$1***@");
}

}  // namespace pgf
