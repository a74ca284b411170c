// One host sample: CPU load, memory, disk use per mount and network throughput. Every reading
// here is a file read or a syscall — no child process: spawning from a proxy with a large heap
// costs far more than the reading itself. Memory comes from systeminformation (it reads
// /proc/meminfo); CPU from os.cpus() tick deltas; disks from statfs() of the mounts in
// /proc/mounts (df's arithmetic); network from /proc/net/dev. The proxy still calls this from a
// worker thread (sample-worker.ts), so a slow filesystem never stalls a session.
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import si from 'systeminformation';
import type { HostStatus } from './status';
import { NetThroughput } from './net-throughput';

export type HostSample = Omit<HostStatus, 'at' | 'alerts'>;

const netThroughput = new NetThroughput();
let previousCpu: { busy: number; total: number } | undefined;

export async function readHost(): Promise<HostSample> {
  const [memory, disks, network] = await Promise.all([si.mem(), diskUsage(), netThroughput.read()]);
  const memoryUsed = memory.total > 0 ? (100 * (memory.total - memory.available)) / memory.total : 0;
  return {
    cpuLoadPercent: round1(cpuLoad()),
    memoryUsedPercent: round1(memoryUsed),
    disks,
    network,
  };
}

/** Busy share of all CPU ticks since the previous call (since boot on the first). */
function cpuLoad(): number {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times;
    const all = t.user + t.nice + t.sys + t.idle + t.irq;
    total += all;
    busy += all - t.idle;
  }
  const prev = previousCpu;
  previousCpu = { busy, total };
  const dBusy = prev ? busy - prev.busy : busy;
  const dTotal = prev ? total - prev.total : total;
  return dTotal > 0 ? (100 * dBusy) / dTotal : 0;
}

/** Real filesystems only (device paths), one entry per mount point. */
async function diskUsage(): Promise<HostSample['disks']> {
  let mounts: string;
  try {
    mounts = await readFile('/proc/mounts', 'utf8');
  } catch {
    return [];
  }
  const points = new Set<string>();
  for (const line of mounts.split('\n')) {
    const [dev, mount] = line.split(' ');
    if (dev?.startsWith('/') && mount) points.add(mount.replace(/\\040/g, ' '));
  }
  const out: HostSample['disks'] = [];
  for (const mount of points) {
    try {
      const s = await statfs(mount);
      const used = s.blocks - s.bfree;
      const denominator = used + s.bavail;
      if (s.blocks > 0 && denominator > 0) out.push({ mount, usedPercent: round1((100 * used) / denominator) });
    } catch {
      /* unmounted meanwhile or not accessible: skip */
    }
  }
  return out;
}

function round1(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 10) / 10 : 0;
}
