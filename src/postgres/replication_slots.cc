#include "postgres/replication_slots.h"

#include <fmt/format.h>

#include "postgres/controller.h"

namespace pgf {

std::string slotNameForMember(const std::string& member_name) {
  // Patroni's mapping (patroni/dcs slot_name_from_member_name): lowercase; '-' and '.' (common in
  // host names) become '_'; any other character outside [a-z0-9_] becomes "u" and its code point
  // as 4+ decimal digits; at most 63 bytes (NAMEDATALEN - 1).
  std::string out;
  for (size_t i = 0; i < member_name.size();) {
    auto c = static_cast<unsigned char>(member_name[i]);
    if (c < 0x80) {
      char lower = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      if ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9') || lower == '_')
        out += lower;
      else if (lower == '-' || lower == '.')
        out += '_';
      else
        out += fmt::format("u{:04d}", static_cast<unsigned>(c));
      ++i;
      continue;
    }
    // A UTF-8 sequence: decode its code point (invalid bytes count as themselves).
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    uint32_t cp = len == 4 ? c & 0x07u : len == 3 ? c & 0x0Fu : len == 2 ? c & 0x1Fu : c;
    size_t j = 1;
    for (; j < static_cast<size_t>(len) && i + j < member_name.size(); ++j) {
      auto cc = static_cast<unsigned char>(member_name[i + j]);
      if ((cc & 0xC0) != 0x80)
        break;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (j != static_cast<size_t>(len)) {
      cp = c;
      j = 1;
    }
    out += fmt::format("u{:04d}", cp);
    i += j;
  }
  if (out.size() > 63)
    out.resize(63);
  return out;
}

Status syncPhysicalSlots(PgConnection& conn, const std::set<std::string>& wanted) {
  auto existing = conn.query(
      "SELECT slot_name, active FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical'");
  if (!existing.ok())
    return existing.error().wrap("listing replication slots");
  std::set<std::string> present;
  std::vector<std::string> failures;
  std::vector<std::string> in_use;  // unwanted, but a standby still streams through it
  for (size_t i = 0; i < existing->rows.size(); ++i) {
    std::string name = existing->get(i, "slot_name").value_or("");
    bool active = existing->get(i, "active").value_or("f") == "t";
    present.insert(name);
    if (wanted.count(name) != 0)
      continue;
    if (active) {
      in_use.push_back(name);
      continue;
    }
    // "AND NOT active" closes most of the race with a standby connecting right now; the rest
    // fails as "slot is active" and is retried next time.
    auto dropped = conn.query(
        "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM "
        "pg_catalog.pg_replication_slots WHERE slot_name = $1 AND NOT active",
        {name});
    if (!dropped.ok())
      failures.push_back(fmt::format("dropping slot \"{}\": {}", name, dropped.error().message));
  }
  for (const auto& name : wanted) {
    if (present.count(name) != 0)
      continue;
    // Reserved at once (from the last checkpoint's redo point), not when the member first
    // connects: a replica that follows a newly promoted primary asks for WAL from before the
    // promotion, which the next checkpoints would otherwise remove before it connects.
    auto created =
        conn.query("SELECT pg_catalog.pg_create_physical_replication_slot($1, true)", {name});
    if (!created.ok())
      failures.push_back(fmt::format("creating slot \"{}\": {}", name, created.error().message));
  }
  if (failures.empty() && in_use.empty())
    return okStatus();
  const bool only_in_use = failures.empty();
  for (const auto& name : in_use)
    failures.push_back(fmt::format("slot \"{}\" is not wanted but still in use", name));
  if (only_in_use) {
    std::string msg;
    for (const auto& f : failures)
      msg += (msg.empty() ? "" : "; ") + f;
    return makeError(ErrorCode::kAlreadyExists, msg, true);
  }
  std::string msg;
  for (const auto& f : failures)
    msg += (msg.empty() ? "" : "; ") + f;
  return makeError(ErrorCode::kPostgresUnavailable, msg, true);
}

Result<nlohmann::json> readReplicationInfo(PgConnection& conn) {
  auto rows = conn.query(
      "SELECT usename, application_name, client_addr::text AS client_addr, state, sync_state, "
      "sync_priority, sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn, "
      "flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn "
      "FROM pg_catalog.pg_stat_replication ORDER BY application_name");
  if (!rows.ok())
    return rows.error().wrap("reading pg_stat_replication");
  auto out = nlohmann::json::array();
  for (const auto& row : rows->rows) {
    nlohmann::json item = nlohmann::json::object();
    for (size_t c = 0; c < rows->columns.size(); ++c) {
      const auto& name = rows->columns[c];
      if (!row[c]) {
        item[name] = nullptr;
      } else if (name == "sync_priority") {
        item[name] = std::atoi(row[c]->c_str());
      } else {
        item[name] = *row[c];
      }
    }
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace pgf
