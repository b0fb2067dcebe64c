// pg_controldata: the cluster's control file as the tool prints it. Cheap (it reads one 8 kB file)
// and works whether or not the server runs, so probe() may call it every time. The tool is always
// run with LC_ALL=C: its labels are translated otherwise.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"
#include "postgres/state.h"

namespace pgf {

struct ControlData {
  std::map<std::string, std::string> fields;  // every "label: value" line, as printed
  std::string sysid;                          // "Database system identifier"
  ControlState state = ControlState::kUnknown;
  int checkpoint_timeline = 0;    // "Latest checkpoint's TimeLineID"
  int64_t checkpoint_lsn = 0;     // "Latest checkpoint location"
  int64_t min_recovery_lsn = 0;   // "Minimum recovery ending location" (0 when none)
  int min_recovery_timeline = 0;  // "Min recovery ending loc's timeline" (0 when none)
  // pg_controldata warned that the file fails its CRC: the values above are untrustworthy.
  bool crc_mismatch = false;
};

// The size of a control file (PG_CONTROL_FILE_SIZE): one that is not this size is damaged.
inline constexpr int64_t kControlFileSize = 8192;

// Maps "Database cluster state" text to ControlState (unknown text: kUnknown).
ControlState parseControlState(std::string_view text);

// Parses pg_controldata's output; an error when the identifier or the state is missing.
Result<ControlData> parseControlData(std::string_view output);

// Runs `<bin_dir>/pg_controldata -D <data_dir>` and parses it.
Result<ControlData> readControlData(const std::string& bin_dir, const std::string& data_dir,
                                    Millis timeout);

}  // namespace pgf
