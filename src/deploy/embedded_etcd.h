// The etcd the broker starts and owns when its configuration names no external etcd: one member
// on loopback, its data in <state_dir>/etcd, recorded in <state_dir>/etcd.pid so that it keeps
// running while the broker is down and is adopted when the broker returns.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/clock.h"
#include "common/result.h"

namespace pgf {

struct EmbeddedEtcdOptions {
  std::string state_dir;
  int client_port = 2379;
  int peer_port = 2380;
  std::optional<uid_t> uid;  // run as this user (the broker runs as root)
  std::optional<gid_t> gid;
};

class EmbeddedEtcd {
 public:
  explicit EmbeddedEtcd(EmbeddedEtcdOptions options);

  // Adopts the etcd that runs from an earlier start, or starts one; then waits until it answers
  // /health (kTimeout with the end of its log otherwise).
  Status start(Millis timeout);
  // Stops it (by its recorded PID).
  void stop();
  bool running() const;
  std::string endpoint() const;  // "127.0.0.1:<client port>"
  std::string dataDir() const;

 private:
  bool healthy() const;

  EmbeddedEtcdOptions options_;
};

}  // namespace pgf
