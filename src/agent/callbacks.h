// The operator's callback scripts (postgresql.callbacks), run as Patroni runs them:
// `<command> <action> <role> <scope>`, for example `/usr/local/bin/notify on_role_change master
// demo`. They run one at a time on a thread of their own, so the HA loop never waits for one; each
// is killed after its timeout, and calls that pile up beyond kMaxPendingCallbacks are dropped with
// a warning. A failing callback is logged and changes nothing else.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace pgf {

inline constexpr size_t kMaxPendingCallbacks = 16;
inline constexpr Millis kCallbackTimeout{60000};

// The command's words (split at spaces and tabs) followed by action, role and scope.
std::vector<std::string> callbackArgv(const std::string& command, const std::string& action,
                                      const std::string& role, const std::string& scope);

class CallbackRunner {
 public:
  CallbackRunner(std::map<std::string, std::string> commands, std::string scope,
                 Millis timeout = kCallbackTimeout);
  // Lets the queued callbacks run for up to 5 s, then waits for the one running (at most its
  // timeout) and drops the rest.
  ~CallbackRunner();
  CallbackRunner(const CallbackRunner&) = delete;
  CallbackRunner& operator=(const CallbackRunner&) = delete;

  // Queues `action` ("on_start", ...) for `role` ("master", "replica") if a command is configured
  // for it. Never blocks.
  void fire(const std::string& action, const std::string& role);
  // Waits (up to `timeout`) until every queued callback has run; true when they all did.
  bool drain(Millis timeout);

 private:
  void run();

  const std::map<std::string, std::string> commands_;
  const std::string scope_;
  const Millis timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<std::string>> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace pgf
