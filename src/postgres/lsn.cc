#include "postgres/lsn.h"

#include <charconv>

#include <fmt/format.h>

namespace pgf {

Result<int64_t> parseLsn(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size())
    return makeError(ErrorCode::kParse, fmt::format("invalid lsn \"{}\"", text));
  uint64_t hi = 0, lo = 0;
  auto h = std::from_chars(text.data(), text.data() + slash, hi, 16);
  auto l = std::from_chars(text.data() + slash + 1, text.data() + text.size(), lo, 16);
  if (h.ec != std::errc() || h.ptr != text.data() + slash || l.ec != std::errc() ||
      l.ptr != text.data() + text.size() || hi > 0xFFFFFFFFu || lo > 0xFFFFFFFFu)
    return makeError(ErrorCode::kParse, fmt::format("invalid lsn \"{}\"", text));
  return static_cast<int64_t>((hi << 32) | lo);
}

std::string formatLsn(int64_t position) {
  auto p = static_cast<uint64_t>(position);
  return fmt::format("{:X}/{:X}", p >> 32, p & 0xFFFFFFFFu);
}

}  // namespace pgf
