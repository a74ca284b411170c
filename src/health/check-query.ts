// The one query a `check: postgres` runs on its kept connection, and how its row becomes a
// ProbeResult (role, WAL positions, replay lag, timeline). postgres-probe.ts runs it.
import { parseLsn } from './lsn';
import type { ProbeResult, ProbeSuccess } from './types';

/**
 * One round trip. pg_current_wal_lsn() raises an error during recovery, so it is only evaluated on
 * a primary (the CASE guards it; the function is volatile, so it is never folded early).
 * Replay lag is 0 when everything received has been replayed: pg_last_xact_replay_timestamp()
 * stays at the last replayed commit on an idle primary, and now() minus it would grow forever.
 */
export const CHECK_QUERY = `SELECT
  pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
  pg_last_wal_receive_lsn()::text AS receive_lsn,
  pg_last_wal_replay_lsn()::text AS replay_lsn,
  CASE
    WHEN NOT pg_is_in_recovery() THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))
  END::float8 AS replay_lag_seconds,
  -- The timeline of a primary is the first 8 hex digits of its current WAL file name; the
  -- split-brain rule keeps the primary on the newest timeline.
  CASE WHEN pg_is_in_recovery() THEN NULL
    ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline`;

/** Columns of CHECK_QUERY, in order. */
const IN_RECOVERY = 0;
const CURRENT_LSN = 1;
const RECEIVE_LSN = 2;
const REPLAY_LSN = 3;
const REPLAY_LAG_SECONDS = 4;
const TIMELINE = 5;

/** Columns by position (CHECK_QUERY's order), in text format: booleans are 't' or 'f'. */
export function checkRowToResult(values: readonly (string | null)[], durationMs: number): ProbeResult {
  if (values.length < 6) throw new Error(`${values.length} columns instead of 6`);
  if (values[IN_RECOVERY] === 'f') {
    const currentLsn = values[CURRENT_LSN];
    const timeline = values[TIMELINE];
    const result: { -readonly [K in keyof ProbeSuccess]: ProbeSuccess[K] } = { ok: true, role: 'primary', durationMs };
    if (currentLsn != null) result.currentLsn = parseLsn(currentLsn);
    if (timeline != null) result.timeline = Number(timeline);
    return result;
  }
  if (values[IN_RECOVERY] !== 't') throw new Error(`in_recovery is ${JSON.stringify(values[IN_RECOVERY])}`);
  const receiveLsn = values[RECEIVE_LSN];
  const replayLsn = values[REPLAY_LSN];
  const lag = values[REPLAY_LAG_SECONDS];
  const result: { -readonly [K in keyof ProbeSuccess]: ProbeSuccess[K] } = { ok: true, role: 'replica', durationMs };
  if (receiveLsn != null) result.receiveLsn = parseLsn(receiveLsn);
  if (replayLsn != null) result.replayLsn = parseLsn(replayLsn);
  // NULL when the replica has not replayed any transaction yet: lag unknown, not zero.
  if (lag != null) result.replayLagSeconds = Number(lag);
  return result;
}
