// The proxy's internal event bus: one typed EventEmitter that the core emits on and that
// observers (metrics, the status timeline, hooks, logs) subscribe to. The core never imports an
// observer; an observer never reaches into the core.
import { EventEmitter } from 'node:events';
import type { ProbeResult } from './health/types';

/** One line of the status timeline (control/timeline.ts), also sent on the bus as 'timeline'. */
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

export interface BusEvents {
  /** A session reached its backend (startup bytes forwarded). */
  'session.start': { listener: string; backend: string };
  /** `cause`: one of proxy/end-cause.ts's EndCause names. */
  'session.end': { listener: string; backend?: string; cause: string; reason?: string; durationMs: number; bytesFromClient: number; bytesToClient: number };
  /** A CancelRequest: to the one server that issued the key, fanned out (unknown key), or dropped (unknown_cancel_rate). */
  'cancel.forwarded': { listener: string; outcome: 'exact' | 'forwarded' | 'fanned-out' | 'dropped' };
  /** A client got an ErrorResponse instead of a session (sqlstate says why). */
  'session.rejected': { listener: string; sqlstate: string; code: string };
  /** A session left the wait queue. */
  'session.dequeued': { listener: string; waitMs: number; outcome: 'served' | 'timeout' | 'full' | 'gone' | 'shutdown' };
  /** Sessions closed by pgwarden itself (drain on down, maint, switchover, reload, shutdown). */
  'session.closed_by_proxy': { listener: string; backend?: string; reason: 'down' | 'maint' | 'switchover' | 'reload' | 'shutdown' | 'fenced' | 'patroni'; inTransaction: boolean };
  /** sessions.survive: an idle session whose server went away was moved (result moved) or closed instead (not_moved). */
  'session.moved': { listener: string; from?: string; to?: string; result: 'moved' | 'not_moved'; pauseMs?: number };
  /** Every health probe result. */
  'check': { backend: string; result: ProbeResult };
  /** A role poll of a replica during a failover (failover.watch_interval); not a check. */
  'poll': { backend: string; result: ProbeResult; checkNow: boolean };
  /** Health state flip; `detectionMs` = first failure seen → marked down (on down only). */
  'backend.state': { backend: string; from: string; to: string; detectionMs?: number };
  'primary.changed': { from?: string; to?: string };
  'backend.fenced': { backend: string; keep: string };
  /** This instance's etcd lease is held (reachable) or its deadline passed (not). */
  'coordination.etcd': { reachable: boolean };
  /** The leader saw every live member acknowledge a failover or switchover epoch. */
  'coordination.handshake': { epoch: number; durationMs: number };
  'switchover.done': { from?: string; to: string; durationMs: number; ok: boolean };
  'hook.run': { event: string; command: string; outcome: 'ok' | 'failed' | 'timeout' | 'error'; durationMs: number; exitCode?: number };
  'host.threshold': { metric: string; crossed: boolean; value: number; threshold: number };
  'config.reload': { ok: boolean; changes: string[]; error?: string };
  /** Every line of the status timeline (also logged). */
  'timeline': RecentEvent;
}

export class Bus extends EventEmitter {
  override emit<K extends keyof BusEvents>(name: K, payload: BusEvents[K]): boolean {
    return super.emit(name, payload);
  }
  override on<K extends keyof BusEvents>(name: K, fn: (payload: BusEvents[K]) => void): this {
    return super.on(name, fn);
  }
  override off<K extends keyof BusEvents>(name: K, fn: (payload: BusEvents[K]) => void): this {
    return super.off(name, fn);
  }
}
