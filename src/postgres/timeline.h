// Timeline history files (pg_wal/<timeline>.history), written by PostgreSQL at every promotion:
// one line per ancestor timeline, "<parent timeline>\t<switch position>\t<reason>".
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pgf {

// Where `timeline`'s parent ended, read from the history file of `timeline` in `data_dir`'s pg_wal
// (nullopt when the file or its last line cannot be read).
std::optional<int64_t> readTimelineSwitch(const std::string& data_dir, int timeline);

// The same, from the text of a history file.
std::optional<int64_t> parseTimelineSwitch(const std::string& history_text);

}  // namespace pgf
