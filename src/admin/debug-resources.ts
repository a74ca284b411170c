// GET /debug/resources: what the process holds, after a forced full collection, so a soak (or an
// operator chasing a slow leak) can compare one moment with another: a timer, socket or
// session left behind per failover shows up as a count that only grows. The collection takes a
// few ms, which is why the route wants the admin token like the state-changing ones.
import { readdirSync } from 'node:fs';
import { v8Gc } from '../metrics/v8-gc';
import type { StatusSnapshot } from '../routing/status-snapshot';

export interface ResourceReport {
  /** False when V8's gc() could not be reached: the heap figure then includes garbage. */
  gcForced: boolean;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  /** process.getActiveResourcesInfo() counted by type (TCPSocketWrap, Timeout, FSReqCallback, …). */
  resources: Record<string, number>;
  /** Open file descriptors (/proc/self/fd); absent where /proc is missing. */
  openFds?: number;
  /** Client sessions the listeners hold, and those waiting in their queues. */
  sessions: number;
  queued: number;
  /** Backends in the topology (a removed backend stays until its last session ends). */
  backends: number;
}

export function resourceReport(status: StatusSnapshot): ResourceReport {
  const gc = v8Gc();
  if (gc !== undefined) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  const mem = process.memoryUsage();
  const resources: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1;
  return {
    gcForced: gc !== undefined,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    heapTotalBytes: mem.heapTotal,
    externalBytes: mem.external,
    resources,
    openFds: openFds(),
    sessions: status.listeners.reduce((n, l) => n + l.sessions, 0),
    queued: status.listeners.reduce((n, l) => n + l.queued, 0),
    backends: status.backends.length,
  };
}

function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}
