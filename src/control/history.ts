// The recent past of the running proxy for the status page's charts (GET /history): a sample
// every few seconds in a fixed-size ring, and the failovers and switchovers of the same window as
// markers. It lives in the proxy, not in the browser, so a page opened after a failover still
// shows it. Sampling reads counters that already exist (listener session sets, router queues,
// the topology's lag, the sockets' byte counts); nothing here runs per message or per session
// except one addition per ended session.
import type { HistoryMarker, HistoryPoint, HistorySnapshot } from '../admin/history-snapshot';
import { realClock, type Clock } from '../clock';
import type { Bus, BusEvents, RecentEvent } from '../events';
import type { Listener } from '../proxy/listener';
import type { Session } from '../proxy/session';
import type { Topology } from '../routing/topology';

/** A point every 5 s: 180 points for 15 minutes, a few tens of kB however busy the proxy is. */
export const HISTORY_INTERVAL_MS = 5_000;
export const HISTORY_WINDOW_MS = 15 * 60_000;

/** Timeline events drawn as markers on the charts: the primary changing hands. */
export const MARKER_EVENTS: ReadonlySet<string> = new Set(['primary.changed', 'primary.lost', 'failover.promoted', 'switchover.done', 'backend.fenced']);

/** A flapping server must not grow the marker list without bound: the oldest go first. */
const MAX_MARKERS = 200;

/** What one sample reads from the proxy. */
export interface HistoryReading {
  readonly listeners: readonly { name: string; sessions: number; queued: number }[];
  /** Replicas that are up and whose lag is known. */
  readonly replicas: readonly { name: string; lagBytes?: number; lagSeconds?: number }[];
  /** Bytes received from and sent to clients so far by the sessions still open. */
  readonly openBytes: { in: number; out: number };
}

export interface HistoryOptions {
  readonly bus: Bus;
  readonly read: () => HistoryReading;
  readonly clock?: Clock;
  /** Tests sample faster and over a shorter window; the proxy uses the constants above. */
  readonly intervalMs?: number;
  readonly windowMs?: number;
}

export class History {
  readonly intervalMs: number;
  readonly windowMs: number;
  private readonly clock: Clock;
  /** The ring: `size` points ending before index `next`. */
  private readonly ring: (HistoryPoint | undefined)[];
  private next = 0;
  private size = 0;
  private readonly markers: HistoryMarker[] = [];
  /** Bytes of the sessions that ended, since start: with the open ones', a counter that only grows. */
  private endedIn = 0;
  private endedOut = 0;
  private previous?: { t: number; in: number; out: number };
  private timer?: { clear(): void };

  constructor(private readonly opts: HistoryOptions) {
    this.clock = opts.clock ?? realClock;
    this.intervalMs = opts.intervalMs ?? HISTORY_INTERVAL_MS;
    this.windowMs = opts.windowMs ?? HISTORY_WINDOW_MS;
    this.ring = new Array<HistoryPoint | undefined>(Math.max(1, Math.ceil(this.windowMs / this.intervalMs)));
  }

  /** Start sampling; returns the disposer (stop). Idempotent. */
  start(): () => void {
    if (this.timer === undefined) {
      this.opts.bus.on('session.end', this.onSessionEnd);
      this.opts.bus.on('timeline', this.onTimeline);
      this.previous = { t: this.clock.now(), ...this.totalBytes(this.opts.read()) };
      this.arm();
    }
    return () => this.stop();
  }

  /** Idempotent. What was sampled stays readable. */
  stop(): void {
    this.timer?.clear();
    this.timer = undefined;
    this.opts.bus.off('session.end', this.onSessionEnd);
    this.opts.bus.off('timeline', this.onTimeline);
  }

  snapshot(): HistorySnapshot {
    const now = this.clock.now();
    const points: HistoryPoint[] = [];
    for (let i = this.size; i > 0; i--) {
      const p = this.ring[(this.next - i + this.ring.length) % this.ring.length];
      if (p !== undefined) points.push(p);
    }
    const from = now - this.windowMs;
    return { intervalMs: this.intervalMs, windowMs: this.windowMs, now, points, markers: this.markers.filter((m) => m.t >= from) };
  }

  /** Take one sample now (the timer's work; tests may call it). */
  sample(): void {
    const t = this.clock.now();
    const r = this.opts.read();
    const bytes = this.totalBytes(r);
    const prev = this.previous ?? { t, ...bytes };
    const seconds = (t - prev.t) / 1000;
    // A counter that goes back (a socket counted twice, then once) reads as no traffic, not negative.
    const rate = (now: number, before: number) => (seconds > 0 ? Math.max(0, now - before) / seconds : 0);
    const point: HistoryPoint = {
      t,
      sessions: {},
      queued: {},
      bytesPerSecond: { in: rate(bytes.in, prev.in), out: rate(bytes.out, prev.out) },
      lag: {},
    };
    for (const l of r.listeners) {
      point.sessions[l.name] = l.sessions;
      point.queued[l.name] = l.queued;
    }
    for (const b of r.replicas) {
      point.lag[b.name] = { ...(b.lagBytes !== undefined && { bytes: b.lagBytes }), ...(b.lagSeconds !== undefined && { seconds: b.lagSeconds }) };
    }
    this.previous = { t, ...bytes };
    this.ring[this.next] = point;
    this.next = (this.next + 1) % this.ring.length;
    this.size = Math.min(this.size + 1, this.ring.length);
    const from = t - this.windowMs;
    const stale = this.markers.findIndex((m) => m.t >= from);
    this.markers.splice(0, stale === -1 ? this.markers.length : stale);
  }

  private arm(): void {
    this.timer = this.clock.setTimeout(() => {
      this.sample();
      this.arm();
    }, this.intervalMs);
  }

  private totalBytes(r: HistoryReading): { in: number; out: number } {
    return { in: this.endedIn + r.openBytes.in, out: this.endedOut + r.openBytes.out };
  }

  private readonly onSessionEnd = (e: BusEvents['session.end']): void => {
    this.endedIn += e.bytesFromClient;
    this.endedOut += e.bytesToClient;
  };

  private readonly onTimeline = (e: RecentEvent): void => {
    if (!MARKER_EVENTS.has(e.event)) return;
    this.markers.push({ t: this.clock.now(), event: e.event, message: e.message, ...(e.backend !== undefined && { backend: e.backend }) });
    if (this.markers.length > MAX_MARKERS) this.markers.splice(0, this.markers.length - MAX_MARKERS);
  };
}

/** One reading of the running proxy: its listeners, the topology and every open session. */
export function readProxy(topology: Topology, listeners: readonly Listener[], sessions: readonly Session[]): HistoryReading {
  const openBytes = { in: 0, out: 0 };
  for (const s of sessions) {
    openBytes.in += s.client.bytesRead;
    openBytes.out += s.client.bytesWritten;
  }
  return {
    listeners: listeners.map((l) => ({ name: l.name, sessions: l.sessions.size, queued: l.queued })),
    // As on the status page: a server that is not up has no current lag.
    replicas: topology
      .backends()
      .filter((v) => v.state === 'up' && v.role === 'replica' && (v.lagBytes !== undefined || v.lagSeconds !== undefined))
      .map((v) => ({ name: v.name, lagBytes: v.lagBytes, lagSeconds: v.lagSeconds })),
    openBytes,
  };
}
