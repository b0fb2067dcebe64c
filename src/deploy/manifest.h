// An instance's deployment manifest, rendered from its plan's template (deploy/template.h): the
// nodes to run, each with its ports and its agent's whole YAML configuration, and the instance's
// endpoint ports. A backend turns it into running processes.
//
//   nodes:
//     - name: node0
//       pg_port: 21000
//       api_port: 21001
//       agent: |
//         scope: ...
//   endpoints:
//     read_write: 21010
//     read_only: 21011
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace pgf {

struct NodeManifest {
  std::string name;
  int pg_port = 0;
  int api_port = 0;
  std::string agent_config;  // the pgfleet-agent YAML file, whole
};

struct DeploymentManifest {
  std::vector<NodeManifest> nodes;
  int read_write_port = 0;
  int read_only_port = 0;  // 0: no read-only endpoint (a single node)
};

// Parses and checks a rendered manifest: 1 to 9 nodes with distinct names ([a-z0-9-], at most 63
// characters) and distinct ports, each agent configuration a YAML mapping. Errors (kConfig) name
// the key ("nodes[1].pg_port: ...").
Result<DeploymentManifest> parseManifest(const std::string& yaml_text);

}  // namespace pgf
