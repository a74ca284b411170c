// Host-metric thresholds with a hold time: a reading must stay above `above` for `for` ms before
// an alert is raised (so one busy second does not page anyone), and the alert clears as soon as
// the reading is back at or below `above`. Pure: time comes in with every update.
import type { HostConfig, HostThreshold } from '../config/types';

export type HostThresholds = HostConfig['thresholds'];

export interface HostReadings {
  readonly cpu: number;
  readonly memory: number;
  readonly disks: readonly { readonly mount: string; readonly usedPercent: number }[];
}

/** Same shape as the Bus event 'host.threshold'. `metric` is cpu, memory or disk:<mount>. */
export interface Crossing {
  readonly metric: string;
  /** true: the alert was raised; false: it cleared. */
  readonly crossed: boolean;
  readonly value: number;
  readonly threshold: number;
}

interface Track {
  /** Clock time of the first reading above the threshold in the current run, if any. */
  aboveSince?: number;
  raised: boolean;
  lastValue: number;
}

export class ThresholdTracker {
  private readonly tracks = new Map<string, Track>();

  constructor(private readonly thresholds: HostThresholds) {}

  /** Feeds one set of readings taken at `now` (ms); returns the alerts raised or cleared by it. */
  update(readings: HostReadings, now: number): Crossing[] {
    const crossings: Crossing[] = [];
    const seen = new Set<string>();
    const feed = (metric: string, value: number, threshold: HostThreshold | undefined): void => {
      if (threshold === undefined) return;
      // A reading that could not be taken keeps the metric's state: neither proof of a problem nor of its end.
      seen.add(metric);
      if (!Number.isFinite(value)) return;
      const crossing = this.step(metric, value, threshold, now);
      if (crossing) crossings.push(crossing);
    };
    feed('cpu', readings.cpu, this.thresholds.cpu);
    feed('memory', readings.memory, this.thresholds.memory);
    for (const disk of readings.disks) feed(`disk:${disk.mount}`, disk.usedPercent, this.thresholds.disk);

    // A mount that vanished (unmounted) cannot stay alerting forever: clear it with its last value.
    for (const [metric, track] of this.tracks) {
      if (seen.has(metric)) continue;
      this.tracks.delete(metric);
      if (track.raised) crossings.push({ metric, crossed: false, value: track.lastValue, threshold: this.thresholdOf(metric) });
    }
    return crossings;
  }

  /** Metrics whose alert is currently raised, e.g. ["cpu", "disk:/"], in a stable order. */
  alerts(): string[] {
    return [...this.tracks].filter(([, track]) => track.raised).map(([metric]) => metric).sort(byMetric);
  }

  private step(metric: string, value: number, threshold: HostThreshold, now: number): Crossing | undefined {
    let track = this.tracks.get(metric);
    if (track === undefined) {
      track = { raised: false, lastValue: value };
      this.tracks.set(metric, track);
    }
    track.lastValue = value;
    if (value > threshold.above) {
      track.aboveSince ??= now;
      if (!track.raised && now - track.aboveSince >= threshold.for) {
        track.raised = true;
        return { metric, crossed: true, value, threshold: threshold.above };
      }
      return undefined;
    }
    track.aboveSince = undefined;
    if (!track.raised) return undefined;
    track.raised = false;
    return { metric, crossed: false, value, threshold: threshold.above };
  }

  private thresholdOf(metric: string): number {
    const key = metric.startsWith('disk:') ? 'disk' : (metric as 'cpu' | 'memory');
    return this.thresholds[key]?.above ?? 0;
  }
}

/** cpu, memory, then disks by mount. */
function byMetric(a: string, b: string): number {
  const rank = (m: string): number => (m === 'cpu' ? 0 : m === 'memory' ? 1 : 2);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}
