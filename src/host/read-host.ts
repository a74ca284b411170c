// One host sample: CPU load, memory, disk use per mount (systeminformation) and network
// throughput (/proc/net/dev). Blocking in places (systeminformation uses execSync on Linux), so
// the proxy calls it from a worker thread (sample-worker.ts).
import si from 'systeminformation';
import type { HostStatus } from '../admin/controller';
import { NetThroughput } from './net-throughput';

export type HostSample = Omit<HostStatus, 'at' | 'alerts'>;

const netThroughput = new NetThroughput();

export async function readHost(): Promise<HostSample> {
  const [load, memory, disks, network] = await Promise.all([
    si.currentLoad(),
    si.mem(),
    si.fsSize().catch(() => [] as si.Systeminformation.FsSizeData[]),
    netThroughput.read(),
  ]);
  const memoryUsed = memory.total > 0 ? (100 * (memory.total - memory.available)) / memory.total : 0;
  return {
    cpuLoadPercent: round1(load.currentLoad),
    memoryUsedPercent: round1(memoryUsed),
    disks: disks
      .filter((disk) => disk.size > 0 && Number.isFinite(disk.use))
      .map((disk) => ({ mount: disk.mount, usedPercent: round1(disk.use) })),
    network,
  };
}

function round1(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 10) / 10 : 0;
}
