// `pgfleetctl show-config` and `pgfleetctl edit-config`: print the DCS config key, or change it as
// patronictl does (--set, --pg, --apply, --replace, or an editor), show the change as a diff and
// write it with a compare-and-set on the key's revision, so that a concurrent change is never
// overwritten. pgfleetctl never asks for confirmation; --force is accepted for patronictl
// compatibility and changes nothing.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "ctl/ctl_context.h"

namespace pgf::ctl {

struct EditConfigRequest {
  std::vector<std::string> settings;     // --set KEY=VALUE, in order
  std::vector<std::string> pg_settings;  // --pg NAME=VALUE, applied after the --set ones
  std::string apply_file;                // --apply: "" = none, "-" = stdin
  std::string replace_file;              // --replace: "" = none, "-" = stdin
  bool quiet = false;                    // -q: no diff, no "Not changed"
};

// Lets the user edit `yaml` and returns the edited text; `scope` names the temporary file.
using ConfigEditor =
    std::function<Result<std::string>(const std::string& yaml, const std::string& scope)>;

// The ConfigEditor pgfleetctl uses: $EDITOR (else vi), run through /bin/sh as git runs it so that
// EDITOR may carry options ("code --wait"), on a temporary file that is removed afterwards. An
// error when the editor cannot start or exits with a non-zero status.
Result<std::string> editWithEditor(const std::string& yaml, const std::string& scope);

// Prints the config key as YAML (pretty) or JSON; "cluster has no config key" when it is absent.
int runShowConfig(const CtlTarget& target, Dcs& dcs, OutputFormat format, std::ostream& out,
                  std::ostream& err);

// --replace, then --apply, then --set and --pg, are applied in that order to the current config
// (an absent key counts as {}); with none of them, `editor` edits it. Then: an unchanged config
// prints "Not changed"; a changed one is validated, its diff printed, and written only if the key
// still has the revision it was read at ("config changed concurrently, try again" otherwise),
// followed by "Configuration changed". `in` is read for "-".
int runEditConfig(const CtlTarget& target, Dcs& dcs, const EditConfigRequest& request,
                  std::istream& in, const ConfigEditor& editor, std::ostream& out,
                  std::ostream& err);

}  // namespace pgf::ctl
