// EtcdWatch: one background thread holding a watch stream (POST /v3/watch) over a cluster's
// prefix, so waitForChange() can block until one of the watched keys changes. Started lazily by
// the first waitForChange(). When the stream breaks (etcd restarted, endpoint gone, idle read
// timeout) the thread reconnects from the next revision it has not seen, trying the next endpoint
// after a failure, with a short backoff. stop() (and so the destructor) aborts a blocked stream at
// once; only an authentication in progress can hold it up, for about a second.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "dcs/etcd/etcd_client.h"

namespace pgf {

class HttpConnection;

class EtcdWatch {
 public:
  // Watches every key under `prefix`; only changes to `watched_keys` (full keys) wake waiters.
  EtcdWatch(EtcdClient& client, std::string prefix, std::vector<std::string> watched_keys);
  ~EtcdWatch();
  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;

  // true as soon as a watched key changed at a revision above `after_revision`; false after
  // `timeout`. Also true (a harmless spurious wake) when `after_revision` predates what the watch
  // covers, since such changes cannot be known.
  bool waitForChange(int64_t after_revision, Millis timeout);
  // Makes the waitForChange in progress, or else the next one, return false at once.
  void wake();
  void stop();

 private:
  void run();
  // Holds one stream until it ends. true: etcd accepted the watch (so the endpoint works).
  bool streamOnce(const std::string& endpoint);
  // Applies one streamed message. false: the stream must be dropped (canceled, auth error).
  bool handleMessage(const nlohmann::json& msg, bool& created, const std::string& token);
  bool stopping();

  EtcdClient& client_;
  const std::string prefix_;
  const std::set<std::string> watched_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool started_ = false;
  bool stop_ = false;
  bool woken_ = false;                // wake() was called and no wait has consumed it yet
  int64_t watch_from_ = 0;            // the revision the watch first started from
  int64_t next_revision_ = 0;         // where a reconnected stream resumes
  int64_t last_change_ = 0;           // highest revision at which a watched key changed
  HttpConnection* active_ = nullptr;  // the stream's connection, so stop() can abort it
  std::thread thread_;
};

}  // namespace pgf
