// The HAProxy agent-check line: its grammar, and the parser pgwarden's agent checker
// (health/agent-check.ts) uses to read such a line; `pgwarden agent` (agent/report.ts) writes
// it. Pure: no I/O.
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
