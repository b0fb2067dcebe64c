// WAL positions: PostgreSQL prints them as "XXXXXXXX/XXXXXXXX" (hex high/low 32 bits); Patroni and
// the DCS store them as a byte count.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace pgf {

Result<int64_t> parseLsn(std::string_view text);
std::string formatLsn(int64_t position);

}  // namespace pgf
