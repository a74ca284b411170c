// The HAProxy agent-check line: what `pgwarden agent` answers, and the parser pgwarden (or any
// client) uses to read such a line. Pure: no I/O.
//
// Protocol (HAProxy configuration manual, section 5.2 "agent-check", and tcpcheck.c
// tcpcheck_agent_expect_reply): the agent answers a TCP connection with ONE ASCII line ended by
// the first CR or LF. The line is made of words separated by spaces, tabs or commas, in any
// order, case-insensitive; when two words of the same category appear, the last one wins:
//   - a health word: up | down | stopped | fail
//   - an admin word: ready | drain | maint   (sticky in HAProxy until another admin word comes)
//   - a weight: digits followed by '%', relative to the server's configured weight
//   - maxconn:<N>
// Everything after a '#' is a free-text description. Unknown words are reported by HAProxy as an
// agent error and otherwise ignored; a line without a terminator is ignored as a whole.
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

export type AgentHealthWord = 'up' | 'down' | 'stopped' | 'fail';
export type AgentAdminWord = 'ready' | 'drain' | 'maint';

export interface ParsedReply {
  /**
   * One word that sums the line up, the most restrictive present:
   * maint > down/stopped/fail > drain > up > ready. Absent when the line has no state word.
   */
  state?: AgentHealthWord | AgentAdminWord;
  /** Last health word (operational state). */
  health?: AgentHealthWord;
  /** Last admin word (sticky in HAProxy until another admin word). */
  admin?: AgentAdminWord;
  /** Last weight, percent of the configured weight. */
  weightPercent?: number;
  maxconn?: number;
  /** Text after '#', trimmed; absent when empty. */
  comment?: string;
  /** Words that are none of the above (HAProxy logs the first as an agent error). */
  unknown: string[];
}

const HEALTH_WORDS: ReadonlySet<string> = new Set(['up', 'down', 'stopped', 'fail']);
const ADMIN_WORDS: ReadonlySet<string> = new Set(['ready', 'drain', 'maint']);
const SEVERITY: Record<AgentHealthWord | AgentAdminWord, number> = { ready: 0, up: 1, drain: 2, stopped: 3, fail: 3, down: 3, maint: 4 };

/** Parses the first line of `text` (up to the first CR or LF). Never throws. */
export function parseAgentReply(text: string): ParsedReply {
  const line = text.split(/[\r\n]/, 1)[0] ?? '';
  const sharp = line.indexOf('#');
  const words = (sharp === -1 ? line : line.slice(0, sharp)).split(/[ \t,]+/).filter((word) => word !== '');
  const reply: ParsedReply = { unknown: [] };
  for (const word of words) {
    const lower = word.toLowerCase();
    if (HEALTH_WORDS.has(lower)) reply.health = lower as AgentHealthWord;
    else if (ADMIN_WORDS.has(lower)) reply.admin = lower as AgentAdminWord;
    else if (/^\d+%$/.test(lower)) reply.weightPercent = Number.parseInt(lower, 10);
    else if (/^maxconn:\d+$/.test(lower)) reply.maxconn = Number.parseInt(lower.slice('maxconn:'.length), 10);
    else reply.unknown.push(word);
  }
  const state = mostRestrictive(reply.health, reply.admin);
  if (state !== undefined) reply.state = state;
  const comment = sharp === -1 ? '' : line.slice(sharp + 1).trim();
  if (comment !== '') reply.comment = comment;
  return reply;
}

/** The line carries something to apply (a state, a weight or a maxconn), not only noise. */
export function isActionable(reply: ParsedReply): boolean {
  return reply.health !== undefined || reply.admin !== undefined || reply.weightPercent !== undefined || reply.maxconn !== undefined;
}

function mostRestrictive(health?: AgentHealthWord, admin?: AgentAdminWord): AgentHealthWord | AgentAdminWord | undefined {
  if (health === undefined) return admin;
  if (admin === undefined) return health;
  return SEVERITY[admin] >= SEVERITY[health] ? admin : health;
}

function percent(value: number): string {
  return `${Math.round(value)}%`;
}

/** A mount path could hold anything; the line must stay one printable ASCII line. */
function sanitize(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > MAX_COMMENT_LENGTH ? `${clean.slice(0, MAX_COMMENT_LENGTH - 3)}...` : clean;
}
