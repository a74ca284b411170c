// The contract between the running proxy (App) and the operator's faces that steer it: the
// admin HTTP API, the status page, the CLI verbs. Types only. The snapshot it returns is
// declared beside the topology (routing/status-snapshot.ts); metrics reads it through its own
// narrower interface (metrics/metrics.ts, MetricsSource).
import type { AdminState, StatusSnapshot } from '../routing/status-snapshot';
import type { HistorySnapshot } from './history-snapshot';

export interface ReloadResult {
  ok: boolean;
  /** On failure: the config problems (as ConfigError.format() prints them). */
  error?: string;
  changes?: string[];
}

export interface SwitchoverResult {
  ok: boolean;
  from?: string;
  to: string;
  durationMs?: number;
  error?: string;
  /** Sessions closed at a transaction boundary / cut at drain_timeout. */
  closedIdle?: number;
  closedInTransaction?: number;
}

export interface AdminController {
  status(): StatusSnapshot;
  /** The last minutes as samples and failover markers (GET /history, the status page charts). */
  history(): HistorySnapshot;
  /** Throws UnknownBackendError (src/errors.ts). */
  setAdminState(backend: string, state: AdminState): void;
  switchover(to: string): Promise<SwitchoverResult>;
  reload(): Promise<ReloadResult>;
  /** Every listener has a candidate. */
  ready(): boolean;
}
