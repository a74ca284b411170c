// The contract between the running proxy (App) and everything that observes or steers it:
// the admin HTTP API, the status page, metrics, the CLI verbs. Types only.
import type { FailureLayer } from '../health/types';

export type AdminState = 'ready' | 'drain' | 'maint';

export interface BackendStatus {
  name: string;
  host: string;
  port: number;
  /** Health state from the checks. */
  state: 'init' | 'up' | 'down';
  /** Operator state: drain = no new sessions (existing stay), maint = no traffic at all. */
  adminState: AdminState;
  /** true when the split-brain rule keeps writes away from this server. */
  fenced: boolean;
  transitional: boolean;
  role?: 'primary' | 'replica';
  isPrimary: boolean;
  weight: number;
  /** Effective weight after an agent's report (equals weight without an agent). */
  effectiveWeight: number;
  backup: boolean;
  lagBytes?: number;
  lagSeconds?: number;
  sessions: number;
  lastCheck?: { ok: boolean; at: string; durationMs: number; layer?: FailureLayer; message?: string };
  /** Last agent report, when `health.agent` is configured. */
  agent?: { at: string; report: string; reachable: boolean };
}

export interface ListenerStatus {
  name: string;
  bind: string;
  route: 'primary' | 'replica' | 'any';
  balance: string;
  fallback: string;
  sessions: number;
  queued: number;
  /** Some backend can take a new session right now. */
  hasCandidate: boolean;
  /** Why not, when hasCandidate is false. */
  reason?: string;
}

export interface RecentEvent {
  /** ISO time. */
  time: string;
  /** Event name shared by logs, metrics and the status timeline, e.g. backend.down. */
  event: string;
  level: 'info' | 'warn' | 'error';
  message: string;
  backend?: string;
  listener?: string;
}

export interface StatusSnapshot {
  version: string;
  startedAt: string;
  primary?: string;
  listeners: ListenerStatus[];
  backends: BackendStatus[];
  /** Newest last, at most 200. */
  events: RecentEvent[];
  host?: HostStatus;
}

export interface HostStatus {
  at: string;
  cpuLoadPercent: number;
  memoryUsedPercent: number;
  disks: { mount: string; usedPercent: number }[];
  network: { iface: string; rxBytesPerSec: number; txBytesPerSec: number }[];
  /** Thresholds currently crossed, e.g. ["cpu", "disk:/"] */
  alerts: string[];
}

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
  /** Throws UnknownBackendError (src/errors.ts). */
  setAdminState(backend: string, state: AdminState): void;
  switchover(to: string): Promise<SwitchoverResult>;
  reload(): Promise<ReloadResult>;
  /** Every listener has a candidate. */
  ready(): boolean;
}
