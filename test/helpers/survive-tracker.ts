// A test-only SessionStateTracker (src/survive/contracts.ts) for the session mover's tests, until
// the real tracker is merged: it follows `SET name = value` / `SET name TO value` sent as simple
// queries, named prepared statements (Parse / Close), and the ParameterStatus values the client
// was told. A query containing UNMOVABLE_MARK makes the session unmovable (state it cannot
// reproduce), like a temporary table would for the real tracker.
import type { Movability, ReplayStep, SessionStateTracker } from '../../src/survive/contracts';

export const UNMOVABLE_MARK = 'pgwarden-test:unmovable';

const QUERY = 0x51; // 'Q'
const PARSE = 0x50; // 'P'
const CLOSE = 0x43; // 'C'
const PARAMETER_STATUS = 0x53; // 'S'

/** Every tracker the factory made, so a test can look at them. */
export const trackers: TestTracker[] = [];

export function testTracker(): TestTracker {
  const t = new TestTracker();
  trackers.push(t);
  return t;
}

export class TestTracker implements SessionStateTracker {
  readonly sets = new Map<string, string>();
  readonly statements = new Map<string, { query: string; paramTypes: number[] }>();
  private readonly told = new Map<string, string>();
  private unmovable?: string;

  fromClient(type: number, body: Buffer): void {
    if (type === QUERY) {
      const sql = cString(body, 0).text;
      if (sql.includes(UNMOVABLE_MARK)) this.unmovable = 'the test marked this session unmovable';
      const set = /^\s*set\s+(?:session\s+)?([a-z_][a-z0-9_.]*)\s*(?:=|\bto\b)\s*(.+?)\s*;?\s*$/i.exec(sql);
      if (set) this.sets.set(set[1]!.toLowerCase(), set[2]!);
    } else if (type === PARSE) {
      const name = cString(body, 0);
      const query = cString(body, name.next);
      const count = body.readInt16BE(query.next);
      const paramTypes = Array.from({ length: count }, (_, i) => body.readUInt32BE(query.next + 2 + 4 * i));
      if (name.text !== '') this.statements.set(name.text, { query: query.text, paramTypes });
    } else if (type === CLOSE && body[0] === 0x53) {
      this.statements.delete(cString(body, 1).text);
    }
  }

  fromServer(type: number, body: Buffer): void {
    if (type !== PARAMETER_STATUS) return;
    const name = cString(body, 0);
    this.told.set(name.text, cString(body, name.next).text);
  }

  movable(): Movability {
    return this.unmovable ? { ok: false, reason: this.unmovable } : { ok: true };
  }

  replay(): readonly ReplayStep[] {
    const steps: ReplayStep[] = [...this.sets].map(([name, value]) => ({ kind: 'query', sql: `SET ${name} = ${value}` }));
    for (const [name, s] of this.statements) steps.push({ kind: 'parse', name, query: s.query, paramTypes: s.paramTypes });
    return steps;
  }

  parameters(): ReadonlyMap<string, string> {
    return this.told;
  }
}

function cString(buf: Buffer, at: number): { text: string; next: number } {
  const end = buf.indexOf(0, at);
  return { text: buf.toString('utf8', at, end), next: end + 1 };
}
