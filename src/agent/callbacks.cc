#include "agent/callbacks.h"

#include <spdlog/spdlog.h>

#include "common/process.h"

namespace pgf {

std::vector<std::string> callbackArgv(const std::string& command, const std::string& action,
                                      const std::string& role, const std::string& scope) {
  std::vector<std::string> argv;
  size_t pos = 0;
  while (pos < command.size()) {
    size_t start = command.find_first_not_of(" \t", pos);
    if (start == std::string::npos)
      break;
    size_t end = command.find_first_of(" \t", start);
    argv.push_back(command.substr(start, end == std::string::npos ? end : end - start));
    pos = end == std::string::npos ? command.size() : end;
  }
  argv.push_back(action);
  argv.push_back(role);
  argv.push_back(scope);
  return argv;
}

CallbackRunner::CallbackRunner(std::map<std::string, std::string> commands, std::string scope,
                               Millis timeout)
    : commands_(std::move(commands)), scope_(std::move(scope)), timeout_(timeout) {
  if (!commands_.empty())
    thread_ = std::thread([this] { run(); });
}

CallbackRunner::~CallbackRunner() {
  drain(Millis(5000));  // the last ones (on_stop at shutdown) still run, briefly
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void CallbackRunner::fire(const std::string& action, const std::string& role) {
  auto it = commands_.find(action);
  if (it == commands_.end())
    return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (queue_.size() >= kMaxPendingCallbacks) {
      spdlog::warn("callback {} dropped: {} callbacks are still waiting to run", action,
                   queue_.size());
      return;
    }
    queue_.push_back(callbackArgv(it->second, action, role, scope_));
  }
  cv_.notify_all();
}

bool CallbackRunner::drain(Millis timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, timeout, [this] { return queue_.empty() && !busy_; });
}

void CallbackRunner::run() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
    if (stop_)
      return;
    CommandSpec spec;
    spec.argv = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lk.unlock();
    const std::string what = spec.argv[spec.argv.size() - 3];
    auto r = runCommand(spec, timeout_);
    if (!r.ok())
      spdlog::warn("callback {}: {}", what, r.error().message);
    else if (r->timed_out)
      spdlog::warn("callback {}: killed after {} ms", what, timeout_.count());
    else if (r->exit_code != 0)
      spdlog::warn("callback {}: exited with {}: {}", what, r->exit_code,
                   r->output.substr(0, r->output.find('\n')));
    else
      spdlog::info("callback {} ran", what);
    lk.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

}  // namespace pgf
