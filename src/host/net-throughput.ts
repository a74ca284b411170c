// Network throughput per interface from /proc/net/dev, as bytes per second since the previous
// reading. systeminformation's networkStats() shells out with execSync (blocking the event loop
// that carries every proxied byte), so this reads the kernel's counters directly instead.
import { readFile } from 'node:fs/promises';

export interface IfaceRate {
  iface: string;
  rxBytesPerSec: number;
  txBytesPerSec: number;
}

interface Counters {
  at: number;
  bytes: Map<string, { rx: number; tx: number }>;
}

/** Parse /proc/net/dev (Linux): "iface: rx_bytes rx_packets … (8 rx fields) tx_bytes …". */
export function parseProcNetDev(text: string): Map<string, { rx: number; tx: number }> {
  const out = new Map<string, { rx: number; tx: number }>();
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    if (f.length < 9 || !Number.isFinite(f[0]) || !Number.isFinite(f[8])) continue;
    out.set(m[1], { rx: f[0], tx: f[8] });
  }
  return out;
}

export class NetThroughput {
  private previous?: Counters;

  constructor(private readonly path = '/proc/net/dev') {}

  /** Rates since the last call; [] on the first call or where /proc/net/dev is unreadable. */
  async read(now = Date.now()): Promise<IfaceRate[]> {
    let bytes: Map<string, { rx: number; tx: number }>;
    try {
      bytes = parseProcNetDev(await readFile(this.path, 'utf8'));
    } catch {
      return [];
    }
    const prev = this.previous;
    this.previous = { at: now, bytes };
    if (!prev || now <= prev.at) return [];
    const secs = (now - prev.at) / 1000;
    const rates: IfaceRate[] = [];
    for (const [iface, c] of bytes) {
      const p = prev.bytes.get(iface);
      if (!p) continue;
      rates.push({ iface, rxBytesPerSec: Math.max(0, Math.round((c.rx - p.rx) / secs)), txBytesPerSec: Math.max(0, Math.round((c.tx - p.tx) / secs)) });
    }
    return rates;
  }
}
