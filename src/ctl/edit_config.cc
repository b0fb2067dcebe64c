#include "ctl/edit_config.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>

#include <fmt/format.h>

#include "agent/dynamic_config.h"
#include "ctl/config_edit.h"

extern char** environ;

namespace pgf::ctl {
namespace {

using nlohmann::json;

Result<std::string> readSource(const std::string& file, std::istream& in) {
  std::ostringstream text;
  if (file == "-") {
    text << in.rdbuf();
    return text.str();
  }
  std::ifstream f(file, std::ios::binary);
  if (!f)
    return makeError(ErrorCode::kIo, fmt::format("cannot read {}: {}", file, std::strerror(errno)));
  text << f.rdbuf();
  return text.str();
}

Result<json> readDocument(const std::string& option, const std::string& file, std::istream& in) {
  auto text = readSource(file, in);
  if (!text.ok())
    return text.error().wrap(option);
  return parseConfigDocument(*text, fmt::format("{} {}", option, file == "-" ? "(stdin)" : file));
}

// The config after the changes the request asks for (or the editor's).
Result<json> changedConfig(const std::string& scope, const json& before,
                           const EditConfigRequest& request, std::istream& in,
                           const ConfigEditor& editor) {
  if (request.apply_file == "-" && request.replace_file == "-")
    return makeError(ErrorCode::kInvalidArgument,
                     "only one of --apply and --replace can read the standard input");
  json after = before;
  bool requested = false;
  if (!request.replace_file.empty()) {
    auto doc = readDocument("--replace", request.replace_file, in);
    if (!doc.ok())
      return doc.error();
    after = std::move(doc).value();
    requested = true;
  }
  if (!request.apply_file.empty()) {
    auto doc = readDocument("--apply", request.apply_file, in);
    if (!doc.ok())
      return doc.error();
    after = mergeConfig(after, *doc);
    requested = true;
  }
  std::vector<std::string> settings = request.settings;
  for (const auto& pg : request.pg_settings)
    settings.push_back(pgParameterSetting(pg));
  for (const auto& text : settings) {
    auto setting = parseConfigSetting(text);
    if (!setting.ok())
      return setting.error();
    setConfigValue(after, setting->path, setting->value);
    requested = true;
  }
  if (requested)
    return after;
  auto edited = editor(configAsYaml(before), scope);
  if (!edited.ok())
    return edited.error();
  return parseConfigDocument(*edited, "the edited configuration");
}

// A name for the temporary file that is safe in a path: the scope's letters, digits, '-' and '_'.
std::string fileSafe(const std::string& scope) {
  std::string out;
  for (char c : scope)
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_');
  return out;
}

Status runEditor(const std::string& path) {
  const char* env = std::getenv("EDITOR");
  const std::string editor = env && *env ? env : "vi";
  // The file name goes in as "$1", so only the EDITOR text is read by the shell.
  const std::string command = editor + " \"$1\"";
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), "pgfleetctl", path.c_str(), nullptr};
  pid_t pid = 0;
  if (int rc = posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ);
      rc != 0)
    return makeError(ErrorCode::kCommandFailed,
                     fmt::format("cannot start the editor {}: {}", editor, std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return makeError(ErrorCode::kCommandFailed,
                       fmt::format("waiting for the editor: {}", std::strerror(errno)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return okStatus();
  return makeError(ErrorCode::kCommandFailed,
                   WIFEXITED(status)
                       ? fmt::format("the editor {} exited with status {}: nothing changed", editor,
                                     WEXITSTATUS(status))
                       : fmt::format("the editor {} was killed by signal {}: nothing changed",
                                     editor, WTERMSIG(status)));
}

}  // namespace

Result<std::string> editWithEditor(const std::string& yaml, const std::string& scope) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string path =
      fmt::format("{}/{}-config-XXXXXX.yaml", tmpdir && *tmpdir ? tmpdir : "/tmp", fileSafe(scope));
  int fd = mkstemps(path.data(), 5);
  if (fd < 0)
    return makeError(ErrorCode::kIo,
                     fmt::format("creating a temporary file: {}", std::strerror(errno)));
  const bool written = ::write(fd, yaml.data(), yaml.size()) == static_cast<ssize_t>(yaml.size());
  ::close(fd);
  Result<std::string> edited = written ? Result<std::string>(std::string())
                                       : makeError(ErrorCode::kIo, fmt::format("writing {}", path));
  if (edited.ok()) {
    std::istringstream unused_input;  // readSource reads a file here, never the input
    if (auto st = runEditor(path); !st.ok())
      edited = st.error();
    else
      edited = readSource(path, unused_input);
  }
  ::unlink(path.c_str());
  return edited;
}

int runShowConfig(const CtlTarget& target, Dcs& dcs, OutputFormat format, std::ostream& out,
                  std::ostream& err) {
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return reportFailure(err, cluster.error());
  if (!cluster->config)
    return reportFailure(err, makeError(ErrorCode::kNotFound, "cluster has no config key"));
  const json& config = *cluster->config;
  if (format == OutputFormat::kJson)
    out << config.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  else
    out << configAsYaml(config);
  return 0;
}

int runEditConfig(const CtlTarget& target, Dcs& dcs, const EditConfigRequest& request,
                  std::istream& in, const ConfigEditor& editor, std::ostream& out,
                  std::ostream& err) {
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return reportFailure(err, cluster.error());
  const json before = cluster->config ? *cluster->config : json::object();
  auto after = changedConfig(target.scope, before, request, in, editor);
  if (!after.ok())
    return reportFailure(err, after.error());
  if (*after == before) {
    if (!request.quiet)
      out << "Not changed\n";
    return 0;
  }
  if (auto st = validateDynamicConfig(*after); !st.ok())
    return reportFailure(err, st.error());
  if (!request.quiet)
    out << unifiedDiff(configAsYaml(before), configAsYaml(*after)) << std::flush;
  // Revision 0 (no config key yet) makes the write create-only, so it cannot overwrite either.
  if (auto st = dcs.setConfig(*after, cluster->config_revision); !st.ok()) {
    if (st.error().code == ErrorCode::kCompareFailed)
      return reportFailure(
          err, makeError(ErrorCode::kCompareFailed, "config changed concurrently, try again"));
    return reportFailure(err, st.error().wrap("writing the config key"));
  }
  out << "Configuration changed\n";
  return 0;
}

}  // namespace pgf::ctl
