#include "postgres/controldata.h"

#include <charconv>

#include <fmt/format.h>

#include "common/process.h"
#include "postgres/lsn.h"

namespace pgf {
namespace {

std::string_view trim(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && blank(s.back()))
    s.remove_suffix(1);
  return s;
}

int parseInt(const std::map<std::string, std::string>& fields, const std::string& key) {
  auto it = fields.find(key);
  if (it == fields.end())
    return 0;
  int v = 0;
  auto r = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  return r.ec == std::errc() ? v : 0;
}

int64_t parseLsnField(const std::map<std::string, std::string>& fields, const std::string& key) {
  auto it = fields.find(key);
  if (it == fields.end())
    return 0;
  auto lsn = parseLsn(it->second);
  return lsn.ok() ? *lsn : 0;
}

}  // namespace

ControlState parseControlState(std::string_view text) {
  if (text == "in production")
    return ControlState::kInProduction;
  if (text == "shut down")
    return ControlState::kShutDown;
  if (text == "in archive recovery")
    return ControlState::kInArchiveRecovery;
  if (text == "shut down in recovery")
    return ControlState::kShutDownInRecovery;
  if (text == "starting up" || text == "shutting down" || text == "in crash recovery")
    return ControlState::kOther;
  return ControlState::kUnknown;
}

Result<ControlData> parseControlData(std::string_view output) {
  ControlData data;
  data.crc_mismatch = output.find("CRC checksum does not match") != std::string_view::npos;
  while (!output.empty()) {
    auto nl = output.find('\n');
    std::string_view line = output.substr(0, nl);
    output = nl == std::string_view::npos ? std::string_view() : output.substr(nl + 1);
    // Labels never contain ':'; values may ("pg_control last modified: ... 00:51:02 ...").
    auto colon = line.find(':');
    if (colon == std::string_view::npos)
      continue;
    data.fields[std::string(trim(line.substr(0, colon)))] =
        std::string(trim(line.substr(colon + 1)));
  }
  auto sysid = data.fields.find("Database system identifier");
  auto state = data.fields.find("Database cluster state");
  if (sysid == data.fields.end() || state == data.fields.end() || sysid->second.empty())
    return makeError(ErrorCode::kParse,
                     "pg_controldata output lacks the system identifier or the cluster state");
  data.sysid = sysid->second;
  data.state = parseControlState(state->second);
  data.checkpoint_timeline = parseInt(data.fields, "Latest checkpoint's TimeLineID");
  data.checkpoint_lsn = parseLsnField(data.fields, "Latest checkpoint location");
  data.min_recovery_lsn = parseLsnField(data.fields, "Minimum recovery ending location");
  data.min_recovery_timeline = parseInt(data.fields, "Min recovery ending loc's timeline");
  return data;
}

Result<ControlData> readControlData(const std::string& bin_dir, const std::string& data_dir,
                                    Millis timeout) {
  CommandSpec spec;
  spec.argv = {bin_dir + "/pg_controldata", "-D", data_dir};
  spec.env = {{"LC_ALL", "C"}, {"LANG", "C"}};
  auto run = runCommand(spec, timeout);
  if (!run.ok())
    return run.error().wrap("running pg_controldata");
  if (run->timed_out)
    return makeError(ErrorCode::kTimeout,
                     fmt::format("pg_controldata: no answer within {} ms", timeout.count()), true);
  if (run->exit_code != 0)
    return makeError(ErrorCode::kCommandFailed,
                     fmt::format("pg_controldata exited with {}: {}", run->exit_code,
                                 std::string(trim(run->output))));
  auto parsed = parseControlData(run->output);
  if (!parsed.ok())
    return parsed.error().wrap("pg_controldata");
  return parsed;
}

}  // namespace pgf
