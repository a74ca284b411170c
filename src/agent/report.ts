// The HAProxy agent-check line that `pgwarden agent` answers: what to say, given this host's
// readings and alerts. Pure: no I/O. The line's grammar (and the parser pgwarden's agent
// checker uses) is in protocol/agent-reply.ts.
//
// Our policy (each reply states the whole picture, because an admin word is sticky in HAProxy: a
// reply of only "up 100%" after "drain" would leave the server drained forever):
//   - a disk alert (any mount)  → health `down`: a full disk stops writes, take the host out;
//   - a memory alert            → admin `drain`: keep the sessions it has, send no new ones;
//   - a cpu alert               → weight scaled down linearly from 100% at the threshold to
//                                  MIN_CPU_WEIGHT_PERCENT at 100% cpu, never 0 (that would be a drain);
//   - otherwise                 → `up ready 100%`.
// Alerts (not raw readings) decide, so the `for` hold time of the thresholds applies; the raw
// readings only give the numbers in the comment and the cpu scaling. Examples:
//   up ready 100%
//   up ready 40% #cpu 92%
//   up drain 100% #memory 91%
//   down ready 100% #disk / 97% full
// Trade-off: `ready` also cancels a MAINT set by an operator on HAProxy's CLI; use pgwarden's own
// admin state or HAProxy's `disable agent` to override the agent.
import type { HostThresholds } from '../host/thresholds';

export const MIN_CPU_WEIGHT_PERCENT = 10;
/** A description longer than this is cut: the line must stay well inside an agent's read limit. */
const MAX_COMMENT_LENGTH = 200;

export interface AgentReading {
  readonly cpuLoadPercent: number;
  readonly memoryUsedPercent: number;
  readonly disks: readonly { readonly mount: string; readonly usedPercent: number }[];
  /** Alerts currently raised (ThresholdTracker.alerts()): cpu, memory, disk:<mount>. */
  readonly alerts: readonly string[];
}

/** One agent reply line, terminated by "\n". */
export function buildAgentReply(reading: AgentReading, thresholds: HostThresholds): string {
  const alerts = new Set(reading.alerts);
  const notes: string[] = [];

  const fullDisks = reading.disks.filter((disk) => alerts.has(`disk:${disk.mount}`));
  for (const disk of fullDisks) notes.push(`disk ${disk.mount} ${percent(disk.usedPercent)} full`);
  const health = fullDisks.length > 0 ? 'down' : 'up';

  const memoryHigh = alerts.has('memory');
  if (memoryHigh) notes.push(`memory ${percent(reading.memoryUsedPercent)}`);
  const admin = memoryHigh ? 'drain' : 'ready';

  let weight = 100;
  const cpuThreshold = thresholds.cpu?.above;
  if (alerts.has('cpu') && cpuThreshold !== undefined) {
    weight = cpuWeightPercent(reading.cpuLoadPercent, cpuThreshold);
    notes.push(`cpu ${percent(reading.cpuLoadPercent)}`);
  }

  const comment = notes.length > 0 ? ` #${sanitize(notes.join('; '))}` : '';
  return `${health} ${admin} ${weight}%${comment}\n`;
}

/** 100% at the threshold, falling linearly to MIN_CPU_WEIGHT_PERCENT at 100% cpu. */
export function cpuWeightPercent(cpu: number, above: number): number {
  if (cpu <= above) return 100;
  const headroom = 100 - above;
  const scaled = headroom <= 0 ? 0 : Math.round((100 * (100 - cpu)) / headroom);
  return Math.min(100, Math.max(MIN_CPU_WEIGHT_PERCENT, scaled));
}

function percent(value: number): string {
  return `${Math.round(value)}%`;
}

/** A mount path could hold anything; the line must stay one printable ASCII line. */
function sanitize(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > MAX_COMMENT_LENGTH ? `${clean.slice(0, MAX_COMMENT_LENGTH - 3)}...` : clean;
}
