// Host metrics (cpu, memory, disks, network) sampled off the hot path every `interval`, with
// threshold alerts. Invariants: at most one sample in flight; the next one is scheduled only after
// the previous settled; every timer is kept, unref()'d (realClock) and cleared by stop(); nothing
// here throws into the caller — a failed sample is logged at debug and skipped.
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { HostStatus } from './status';
import { readHost, type HostSample } from './read-host';
import type { Bus } from '../events';
import { realClock, type Clock } from '../clock';
import type { Logger } from '../logger';
import { ThresholdTracker, type Crossing, type HostThresholds } from './thresholds';

/** One reading of the host, without alerts. */
export { readHost, type HostSample };
export type HostSampleSource = () => Promise<HostSample>;

export interface HostSamplerOptions {
  readonly interval: number;
  readonly thresholds: HostThresholds;
  readonly bus?: Bus;
  readonly log?: Logger;
  readonly clock?: Clock;
  /** Where readings come from; systeminformation by default (tests inject fixed readings). */
  readonly source?: HostSampleSource;
}

export interface HostSampler {
  on(event: 'sample', listener: (status: HostStatus) => void): this;
  once(event: 'sample', listener: (status: HostStatus) => void): this;
}

export class HostSampler extends EventEmitter {
  private readonly interval: number;
  private readonly bus?: Bus;
  private readonly log?: Logger;
  private readonly clock: Clock;
  private readonly source: HostSampleSource;
  /** The worker-backed source this sampler made itself (closed on stop). */
  private ownSource?: ReturnType<typeof workerSource>;
  private readonly tracker: ThresholdTracker;
  private readonly thresholds: HostThresholds;
  private timer?: { clear(): void };
  private running = false;
  private inFlight = false;
  private current?: HostStatus;

  constructor(opts: HostSamplerOptions) {
    super();
    this.interval = opts.interval;
    this.thresholds = opts.thresholds;
    this.tracker = new ThresholdTracker(opts.thresholds);
    this.bus = opts.bus;
    this.log = opts.log;
    this.clock = opts.clock ?? realClock;
    this.source = opts.source ?? (this.ownSource = workerSource());
  }

  /** The newest sample, with the alerts raised at that time. */
  get latest(): HostStatus | undefined {
    return this.current;
  }

  /** Takes a first sample now, then one every `interval`. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.sampleNow();
  }

  /** Idempotent; a sample still in flight is dropped when it settles. */
  stop(): void {
    this.running = false;
    this.ownSource?.close();
    this.timer?.clear();
    this.timer = undefined;
  }

  private sampleNow(): void {
    if (!this.running || this.inFlight) return;
    this.inFlight = true;
    let pending: Promise<HostSample>;
    try {
      pending = this.source();
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending
      .then((sample) => {
        if (this.running) this.accept(sample);
      })
      .catch((err: unknown) => {
        this.log?.debug({ event: 'host.sample_failed', err: String(err) }, 'host sample failed; skipped');
      })
      .finally(() => {
        this.inFlight = false;
        if (!this.running) return;
        this.timer = this.clock.setTimeout(() => {
          this.timer = undefined;
          this.sampleNow();
        }, this.interval);
      });
  }

  private accept(sample: HostSample): void {
    const now = this.clock.now();
    const crossings = this.tracker.update({ cpu: sample.cpuLoadPercent, memory: sample.memoryUsedPercent, disks: sample.disks }, now);
    const status: HostStatus = { at: new Date(now).toISOString(), ...sample, alerts: this.tracker.alerts() };
    this.current = status;
    for (const crossing of crossings) this.announce(crossing, status.at);
    try {
      this.emit('sample', status);
    } catch (err) {
      // A listener's bug must not stop the sampling loop.
      this.log?.debug({ event: 'host.sample_listener_failed', err: String(err) }, 'a host sample listener threw');
    }
  }

  private announce(crossing: Crossing, time: string): void {
    const message = describe(crossing, this.thresholds);
    const fields = { event: 'host.threshold', metric: crossing.metric, crossed: crossing.crossed, value: crossing.value, threshold: crossing.threshold };
    if (crossing.crossed) this.log?.warn(fields, message);
    else this.log?.info(fields, message);
    this.bus?.emit('host.threshold', { ...crossing });
    this.bus?.emit('timeline', { time, event: 'host.threshold', level: crossing.crossed ? 'warn' : 'info', message });
  }
}

/** "cpu 92% above 80% for 30000 ms" / "disk:/ back to 61% (threshold 90%)". */
function describe(crossing: Crossing, thresholds: HostThresholds): string {
  const value = `${Math.round(crossing.value)}%`;
  if (!crossing.crossed) return `${crossing.metric} back to ${value} (threshold ${crossing.threshold}%)`;
  const key = crossing.metric.startsWith('disk:') ? 'disk' : (crossing.metric as 'cpu' | 'memory');
  const hold = thresholds[key]?.for ?? 0;
  return `${crossing.metric} ${value} above ${crossing.threshold}%${hold > 0 ? ` for ${hold} ms` : ''}`;
}

/**
 * Reads the host through systeminformation. cpu: load since the previous call (systeminformation
 * keeps the previous tick counts); memory: used = total - available (page cache is reclaimable,
 * so `used` would overstate pressure); disks: per mounted filesystem; network: bytes/s per
 * interface since the previous call (0 on the first). Disks or network failing to read do not
 * spoil cpu and memory.
 */
/**
 * Default source: samples taken in a worker thread (see sample-worker.ts) so that
 * systeminformation's synchronous child processes never block the proxy. Under ts-node (tests)
 * there is no compiled worker file; samples are then taken in this thread.
 */
export function workerSource(): HostSampleSource & { close(): void } {
  if (__filename.endsWith('.ts')) return Object.assign(() => readHost(), { close: () => undefined });
  let worker: Worker | undefined;
  let seq = 0;
  const pending = new Map<number, { resolve: (s: HostSample) => void; reject: (e: Error) => void }>();
  const start = () => {
    const w = new Worker(path.join(__dirname, 'sample-worker.js'));
    w.unref();
    w.on('message', (m: { id: number; sample?: HostSample; error?: string }) => {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.sample) p?.resolve(m.sample);
      else p?.reject(new Error(m.error ?? 'host sample failed'));
    });
    w.on('error', (e) => {
      for (const p of pending.values()) p.reject(e);
      pending.clear();
      worker = undefined;
    });
    w.on('exit', () => {
      if (worker === w) worker = undefined;
    });
    return w;
  };
  const source = () =>
    new Promise<HostSample>((resolve, reject) => {
      worker ??= start();
      const id = ++seq;
      pending.set(id, { resolve, reject });
      worker.postMessage(id);
    });
  return Object.assign(source, {
    close: () => {
      void worker?.terminate();
      worker = undefined;
    },
  });
}
