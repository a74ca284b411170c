// One host reading as the proxy shows it: the sample (read-host.ts) plus when it was taken and
// the thresholds it crosses (thresholds.ts). Read by the status snapshot, metrics and the agent.

export interface HostStatus {
  at: string;
  cpuLoadPercent: number;
  memoryUsedPercent: number;
  disks: { mount: string; usedPercent: number }[];
  network: { iface: string; rxBytesPerSec: number; txBytesPerSec: number }[];
  /** Thresholds currently crossed, e.g. ["cpu", "disk:/"] */
  alerts: string[];
}
