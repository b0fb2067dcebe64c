#include "postgres/pg_tools.h"

#include <fmt/format.h>

#include "common/log.h"

namespace pgf {
namespace {

// Enough for the last few lines of a failing tool; more would flood logs and API answers.
constexpr size_t kMaxOutputInError = 2000;

}  // namespace

std::string outputForError(std::string_view output) {
  std::string text = redact(output);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  if (text.size() > kMaxOutputInError)
    text = "..." + text.substr(text.size() - kMaxOutputInError);
  for (char& c : text) {
    if (c == '\n')
      c = ' ';
  }
  return text;
}

Result<CommandResult> runPgTool(const PgTool& tool, const std::string& program,
                                const std::vector<std::string>& args, Millis timeout,
                                const std::string& stdin_data) {
  CommandSpec spec;
  spec.argv.push_back(tool.bin_dir + "/" + program);
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = tool.env;
  spec.env["LC_ALL"] = "C";
  spec.env["LANG"] = "C";
  spec.stdin_data = stdin_data;
  auto run = runCommand(spec, timeout);
  if (!run.ok())
    return run.error().wrap(fmt::format("running {}", program));
  if (run->timed_out)
    return makeError(ErrorCode::kTimeout,
                     fmt::format("{} did not finish within {} ms: {}", program, timeout.count(),
                                 outputForError(run->output)),
                     true);
  if (run->exit_code != 0)
    return makeError(
        ErrorCode::kCommandFailed,
        fmt::format("{} exited with {}: {}", program, run->exit_code, outputForError(run->output)));
  return run;
}

}  // namespace pgf
