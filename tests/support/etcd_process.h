// A real single-member etcd on loopback for integration tests. It listens on two free ports
// picked once (so a restart keeps its endpoint and its data), logs to <data_dir>.log, and is
// stopped by PID: by stop() or, at the latest, by the destructor.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace pgf::testing {

class EtcdProcess {
 public:
  // `data_dir` is created if missing; it should be inside a fresh temporary directory.
  // `extra_args` are appended to etcd's command line (e.g. {"--auth-token-ttl", "1"}).
  explicit EtcdProcess(std::string data_dir, std::vector<std::string> extra_args = {});
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // Starts etcd (again, after stop()) and waits until its /health answers. Errors carry the tail
  // of etcd's log.
  Status start(Millis timeout = Millis(30000));
  // SIGTERM, then SIGKILL if it has not exited after a few seconds; reaps it. Idempotent.
  void stop();
  // Freezes (SIGSTOP) or thaws (SIGCONT) the process: it keeps its sockets but answers nothing,
  // which is what a partitioned or hung etcd looks like to a client.
  void pause();
  void resume();

  // "127.0.0.1:<client port>", the form Patroni's etcd3.hosts takes.
  std::string endpoint() const;
  // "http://127.0.0.1:<client port>"
  std::string url() const;
  int clientPort() const { return client_port_; }
  pid_t pid() const { return pid_; }
  bool running() const;
  const std::string& dataDir() const { return data_dir_; }
  std::string logTail(int lines = 20) const;

 private:
  std::string data_dir_;
  std::string log_file_;
  std::vector<std::string> extra_args_;
  int client_port_ = 0;
  int peer_port_ = 0;
  pid_t pid_ = 0;
};

// How many keys the etcd listening on 127.0.0.1:`client_port` holds under `prefix` (its JSON
// gateway's count_only range); -1 when it does not answer.
int etcdKeyCount(int client_port, const std::string& prefix);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "pgfleet-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace pgf::testing
