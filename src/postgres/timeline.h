// Timeline history files (pg_wal/<timeline>.history), written by PostgreSQL at every promotion:
// one line per ancestor timeline, "<parent timeline>\t<switch position>\t<reason>".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgf {

// One line of a history file: timeline `parent` ended at `position`.
struct TimelineSwitch {
  int parent = 0;
  int64_t position = 0;
};

// Every switch in the text of a history file, oldest first; lines that do not parse are skipped.
std::vector<TimelineSwitch> parseTimelineHistory(const std::string& history_text);

// The switches in the history file of `timeline` in `data_dir`'s pg_wal (nullopt when there is
// no such file or it cannot be read).
std::optional<std::vector<TimelineSwitch>> readTimelineHistory(const std::string& data_dir,
                                                               int timeline);

// Where `timeline`'s parent ended, read from the history file of `timeline` in `data_dir`'s pg_wal
// (nullopt when the file or its last line cannot be read).
std::optional<int64_t> readTimelineSwitch(const std::string& data_dir, int timeline);

// The same, from the text of a history file.
std::optional<int64_t> parseTimelineSwitch(const std::string& history_text);

}  // namespace pgf
