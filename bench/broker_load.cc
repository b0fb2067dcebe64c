// broker_load: the client side of the broker's density benchmark (bench/density.sh).
//
// It provisions --instances instances of one plan through a pgfleet-broker's OSB API with
// --in-flight requests in flight, as a platform would: PUT, poll last_operation every --poll-ms,
// then bind and write once with the binding's credentials. Meanwhile a sampler sends
// GET /v2/catalog and GET .../last_operation (of an instance already requested) every
// --sample-ms. Every request's latency is timed from before it is sent to its answer read, on a
// connection of its own (as curl would). One thread per request in flight; nothing forks, so the
// driver's own load is small next to what it measures.
//
// Report: one JSON object on stdout: per-request p50/p99 (nearest rank) and counts, and per
// instance its final state, whether the write worked, and its provision time. Every wait is
// bounded by --timeout.
#include <httplib.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "probe_connection.h"

namespace pgf::bench {
namespace {

using nlohmann::json;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string user = "broker";
  std::string password_file;
  std::string service_id;
  std::string plan_id;
  std::string prefix = "dense-";
  int instances = 40;
  int in_flight = 8;
  int poll_ms = 500;
  int sample_ms = 50;
  double timeout_seconds = 900;
};

struct Answer {
  int status = 0;  // 0: no answer
  json body;
  double ms = 0;
};

class Broker {
 public:
  explicit Broker(const Options& o, std::string password) : o_(o), password_(std::move(password)) {}

  Answer call(const std::string& method, const std::string& path,
              const json& body = nullptr) const {
    httplib::Client client(o_.host, o_.port);
    client.set_basic_auth(o_.user, password_);
    client.set_connection_timeout(5);
    client.set_read_timeout(120);
    httplib::Headers headers = {{"X-Broker-API-Version", "2.17"}};
    const Nanos t0 = monoNs();
    httplib::Result res{nullptr, httplib::Error::Unknown};
    if (method == "PUT")
      res = client.Put(path, headers, body.dump(), "application/json");
    else if (method == "DELETE")
      res = client.Delete(path, headers);
    else
      res = client.Get(path, headers);
    Answer a;
    a.ms = static_cast<double>(monoNs() - t0) / NanosPerMilli;
    if (res) {
      a.status = res->status;
      a.body = json::parse(res->body, nullptr, false);
    }
    return a;
  }

 private:
  const Options& o_;
  std::string password_;
};

// Latencies of one kind of request, from several threads.
class Samples {
 public:
  void add(double ms) {
    std::lock_guard<std::mutex> lk(mu_);
    values_.push_back(ms);
  }
  json summary() const {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<double> v = values_;
    std::sort(v.begin(), v.end());
    auto rank = [&](double q) -> json {
      if (v.empty())
        return nullptr;
      size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
      return std::round(v[std::max<size_t>(i, 1) - 1] * 10) / 10;
    };
    return {{"p50_ms", rank(0.50)}, {"p99_ms", rank(0.99)}, {"samples", v.size()}};
  }

 private:
  mutable std::mutex mu_;
  std::vector<double> values_;
};

std::string readPassword(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

struct InstanceResult {
  std::string id;
  std::string state = "not requested";
  bool written = false;
  double provision_ms = 0;
  std::string error;
};

int run(const Options& o) {
  const char* env = std::getenv("PGFLEET_BROKER_PASSWORD");
  std::string password = o.password_file.empty() ? (env ? env : "") : readPassword(o.password_file);
  Broker broker(o, password);
  const Nanos deadline = monoNs() + static_cast<Nanos>(o.timeout_seconds * NanosPerSecond);
  Samples catalog, last_operation, bind;
  std::vector<InstanceResult> results(static_cast<size_t>(o.instances));
  std::atomic<int> next{0};
  std::atomic<int> requested{0};
  std::atomic<bool> done{false};

  auto worker = [&] {
    while (monoNs() < deadline) {
      const int i = next.fetch_add(1);
      if (i >= o.instances)
        return;
      InstanceResult& r = results[static_cast<size_t>(i)];
      r.id = o.prefix + std::to_string(i + 1);
      const std::string path = "/v2/service_instances/" + r.id;
      const Nanos t0 = monoNs();
      Answer put = broker.call("PUT", path + "?accepts_incomplete=true",
                               {{"service_id", o.service_id},
                                {"plan_id", o.plan_id},
                                {"organization_guid", "bench"},
                                {"space_guid", "bench"}});
      requested.store(std::max(requested.load(), i + 1));
      if (put.status != 202) {
        r.state = "provision answered " + std::to_string(put.status);
        continue;
      }
      r.state = "in progress";
      while (r.state == "in progress" && monoNs() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
        Answer op = broker.call("GET", path + "/last_operation");
        if (op.status == 200 && op.body.is_object())
          r.state = op.body.value("state", "in progress");
      }
      r.provision_ms = static_cast<double>(monoNs() - t0) / NanosPerMilli;
      if (r.state != "succeeded")
        continue;
      Answer b = broker.call("PUT", path + "/service_bindings/app",
                             {{"service_id", o.service_id}, {"plan_id", o.plan_id}});
      bind.add(b.ms);
      if (b.status != 201 || !b.body.is_object() || !b.body.contains("credentials")) {
        r.error = "bind answered " + std::to_string(b.status);
        continue;
      }
      Connection conn(b.body["credentials"].value("uri", ""));
      r.written = conn.open() &&
                  conn.exec("CREATE TABLE IF NOT EXISTS bench_ready (at timestamptz)", {},
                            5 * NanosPerSecond) &&
                  conn.exec("INSERT INTO bench_ready VALUES (now())", {}, 5 * NanosPerSecond);
      if (!r.written)
        r.error = oneLine(conn.lastError());
    }
  };

  std::thread sampler([&] {
    std::mt19937 rng(std::random_device{}());
    while (!done.load() && monoNs() < deadline) {
      Answer c = broker.call("GET", "/v2/catalog");
      if (c.status == 200)
        catalog.add(c.ms);
      if (const int n = requested.load(); n > 0) {
        const int i = static_cast<int>(rng() % static_cast<unsigned>(n));
        Answer l = broker.call(
            "GET", "/v2/service_instances/" + o.prefix + std::to_string(i + 1) + "/last_operation");
        if (l.status == 200)
          last_operation.add(l.ms);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(o.sample_ms));
    }
  });

  const Nanos started = monoNs();
  std::vector<std::thread> workers;
  for (int i = 0; i < o.in_flight; ++i)
    workers.emplace_back(worker);
  for (auto& t : workers)
    t.join();
  const Nanos finished = monoNs();
  done.store(true);
  sampler.join();

  json instances = json::array();
  int healthy = 0;
  for (const auto& r : results) {
    healthy += r.written ? 1 : 0;
    json one = {{"id", r.id},
                {"state", r.state},
                {"written", r.written},
                {"provision_ms", std::round(r.provision_ms * 10) / 10}};
    if (!r.error.empty())
      one["error"] = r.error;
    instances.push_back(one);
  }
  json report = {{"instances", o.instances},
                 {"in_flight", o.in_flight},
                 {"healthy", healthy},
                 {"all_ready_ms", std::round(static_cast<double>(finished - started) / 1e5) / 10},
                 {"catalog", catalog.summary()},
                 {"last_operation", last_operation.summary()},
                 {"bind", bind.summary()},
                 {"results", instances}};
  std::cout << report.dump() << std::endl;
  return healthy == o.instances ? 0 : 1;
}

}  // namespace
}  // namespace pgf::bench

int main(int argc, char** argv) {
  pgf::bench::Options o;
  CLI::App app{"broker_load: provisions instances through a pgfleet-broker and times its answers"};
  app.add_option("--host", o.host);
  app.add_option("--port", o.port)->required();
  app.add_option("--user", o.user);
  app.add_option("--password-file", o.password_file,
                 "the broker's password (else PGFLEET_BROKER_PASSWORD)");
  app.add_option("--service-id", o.service_id)->required();
  app.add_option("--plan-id", o.plan_id)->required();
  app.add_option("--prefix", o.prefix, "instance ids are <prefix>1 .. <prefix>N");
  app.add_option("--instances", o.instances)->check(CLI::Range(1, 10000));
  app.add_option("--in-flight", o.in_flight)->check(CLI::Range(1, 256));
  app.add_option("--poll-ms", o.poll_ms)->check(CLI::Range(10, 60000));
  app.add_option("--sample-ms", o.sample_ms)->check(CLI::Range(1, 60000));
  app.add_option("--timeout", o.timeout_seconds, "seconds for the whole run")
      ->check(CLI::Range(1.0, 86400.0));
  CLI11_PARSE(app, argc, argv);
  return pgf::bench::run(o);
}
