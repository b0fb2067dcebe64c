#include "postgres/pg_config.h"

#include <cstdlib>

namespace pgf {
namespace {

std::pair<std::string, int> splitHostPort(const std::string& s, int default_port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos)
    return {s, default_port};
  std::string host = s.substr(0, colon);
  int port = std::atoi(s.c_str() + colon + 1);
  return {host, port > 0 ? port : default_port};
}

}  // namespace

std::string PostgresConfig::listenHost() const {
  auto host = splitHostPort(listen, 5432).first;
  auto comma = host.find(',');
  return comma == std::string::npos ? host : host.substr(0, comma);
}

int PostgresConfig::port() const {
  return splitHostPort(listen, 5432).second;
}

std::string PostgresConfig::connectHost() const {
  if (connect_address.empty()) {
    auto h = listenHost();
    return (h == "*" || h == "0.0.0.0" || h.empty()) ? "127.0.0.1" : h;
  }
  return splitHostPort(connect_address, port()).first;
}

int PostgresConfig::connectPort() const {
  if (connect_address.empty())
    return port();
  return splitHostPort(connect_address, port()).second;
}

}  // namespace pgf
