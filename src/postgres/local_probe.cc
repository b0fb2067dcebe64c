#include "postgres/local_probe.h"

#include <algorithm>
#include <cstdlib>

#include "postgres/lsn.h"

namespace pgf {
namespace {

// One round trip. A primary's timeline comes from its current WAL file name (pg_control's
// checkpoint timeline lags a promotion until the next checkpoint); a standby's from the WAL
// receiver when it streams, else from its last restartpoint.
constexpr const char* kStateQuery = R"sql(
SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
       ELSE pg_catalog.pg_current_wal_lsn()::text END AS current_lsn,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
       ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()),
                                      1, 8))::bit(32)::int END AS current_timeline,
  pg_catalog.pg_last_wal_receive_lsn()::text AS receive_lsn,
  pg_catalog.pg_last_wal_replay_lsn()::text AS replay_lsn,
  (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()) AS checkpoint_timeline,
  r.status AS receiver_status, r.received_tli, r.sender_host, r.sender_port,
  (SELECT coalesce(bool_or(pending_restart), false) FROM pg_catalog.pg_settings) AS pending_restart
FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_wal_receiver AS r ON true
)sql";

int64_t lsnOrZero(const PgValue& v) {
  if (!v)
    return 0;
  auto lsn = parseLsn(*v);
  return lsn.ok() ? *lsn : 0;
}

int intOrZero(const PgValue& v) {
  return v ? std::atoi(v->c_str()) : 0;
}

}  // namespace

void applyControlData(const ControlData& control, LocalPostgres& state) {
  state.sysid = control.sysid;
  state.control_state = control.state;
  state.timeline = control.checkpoint_timeline;
  state.wal_position = control.checkpoint_lsn;
  bool recovery = control.state == ControlState::kInArchiveRecovery ||
                  control.state == ControlState::kShutDownInRecovery;
  if (recovery && control.min_recovery_lsn > control.checkpoint_lsn) {
    state.wal_position = control.min_recovery_lsn;
    state.timeline = std::max(state.timeline, control.min_recovery_timeline);
  }
}

Status applyServerState(PgConnection& conn, Millis timeout, LocalPostgres& state) {
  auto r = conn.query(kStateQuery, {}, timeout);
  if (!r.ok())
    return r.error().wrap("reading server state");
  if (r->rows.size() != 1)
    return makeError(ErrorCode::kInternal, "reading server state: expected one row");
  LocalPostgres s = state;
  s.accepting = true;
  s.in_recovery = r->get(0, "in_recovery").value_or("f") == "t";
  s.receive_lsn = lsnOrZero(r->get(0, "receive_lsn"));
  s.replay_lsn = lsnOrZero(r->get(0, "replay_lsn"));
  s.pending_restart = r->get(0, "pending_restart").value_or("f") == "t";
  auto status = r->get(0, "receiver_status");
  s.streaming = s.in_recovery && status && *status == "streaming";
  auto sender = r->get(0, "sender_host");
  auto sender_port = r->get(0, "sender_port");
  s.following_host.clear();
  if (s.in_recovery && sender && !sender->empty())
    s.following_host = *sender + ":" + sender_port.value_or("");
  if (s.in_recovery) {
    s.wal_position = std::max(s.receive_lsn, s.replay_lsn);
    int received = s.streaming ? intOrZero(r->get(0, "received_tli")) : 0;
    // Not streaming: the last restartpoint, or the control file's minimum recovery timeline
    // (already in `state`) when that is newer.
    s.timeline = received > 0
                     ? received
                     : std::max(intOrZero(r->get(0, "checkpoint_timeline")), state.timeline);
  } else {
    s.wal_position = lsnOrZero(r->get(0, "current_lsn"));
    s.timeline = intOrZero(r->get(0, "current_timeline"));
  }
  state = std::move(s);
  return okStatus();
}

}  // namespace pgf
