// Whole protocol messages (type byte + body, no length word) as the session state tracker
// (src/survive/state-tracker.ts) is fed them, built by name for readable unit tests. Layouts:
// PostgreSQL docs, "Frontend/Backend Protocol" › "Message Formats".
import type { SessionStateTracker } from '../../src/survive/contracts';

export interface Msg {
  readonly from: 'client' | 'server';
  readonly type: number;
  readonly body: Buffer;
}

const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
const code = (c: string): number => c.charCodeAt(0);
const client = (t: string, body: Buffer): Msg => ({ from: 'client', type: code(t), body });
const server = (t: string, body: Buffer): Msg => ({ from: 'server', type: code(t), body });

export const Q = (sql: string): Msg => client('Q', cstr(sql));
export function P(name: string, query: string, types: readonly number[] = []): Msg {
  const n = Buffer.alloc(2 + 4 * types.length);
  n.writeInt16BE(types.length, 0);
  types.forEach((oid, i) => n.writeUInt32BE(oid, 2 + 4 * i));
  return client('P', Buffer.concat([cstr(name), cstr(query), n]));
}
/** Bind with no parameters and no result formats. */
export const B = (portal: string, statement: string): Msg => client('B', Buffer.concat([cstr(portal), cstr(statement), Buffer.alloc(6)]));
export const E = (portal = '', maxRows = 0): Msg => {
  const n = Buffer.alloc(4);
  n.writeInt32BE(maxRows, 0);
  return client('E', Buffer.concat([cstr(portal), n]));
};
export const D = (what: 'S' | 'P', name: string): Msg => client('D', Buffer.concat([Buffer.from(what), cstr(name)]));
export const CLOSE = (what: 'S' | 'P', name: string): Msg => client('C', Buffer.concat([Buffer.from(what), cstr(name)]));
export const SYNC: Msg = client('S', Buffer.alloc(0));
export const FLUSH: Msg = client('H', Buffer.alloc(0));

export const CC = (tag: string): Msg => server('C', cstr(tag));
export const Z = (status: 'I' | 'T' | 'E' = 'I'): Msg => server('Z', Buffer.from(status));
export const ERR = (sqlstate = '42601', message = 'error'): Msg => server('E', Buffer.concat([Buffer.from('SERROR\0'), Buffer.from(`C${sqlstate}\0`), Buffer.from(`M${message}\0`), Buffer.from([0])]));
export const PARSE_OK: Msg = server('1', Buffer.alloc(0));
export const BIND_OK: Msg = server('2', Buffer.alloc(0));
export const CLOSE_OK: Msg = server('3', Buffer.alloc(0));
export const NO_DATA: Msg = server('n', Buffer.alloc(0));
export const EMPTY: Msg = server('I', Buffer.alloc(0));
export const SUSPENDED: Msg = server('s', Buffer.alloc(0));
export const PS = (name: string, value: string): Msg => server('S', Buffer.concat([cstr(name), cstr(value)]));
export const ROW: Msg = server('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x31]));

/** Feeds messages in relay order. */
export function feed(tracker: SessionStateTracker, ...msgs: readonly Msg[]): void {
  for (const m of msgs) {
    if (m.from === 'client') tracker.fromClient(m.type, m.body);
    else tracker.fromServer(m.type, m.body);
  }
}

/**
 * One simple Query and the server's answer: a CommandComplete per tag, or an ErrorResponse for
 * the tag 'ERROR' (the server then skips the rest), then ReadyForQuery `status`.
 */
export function simple(tracker: SessionStateTracker, sql: string, tags: readonly string[], status: 'I' | 'T' | 'E' = 'I'): void {
  feed(tracker, Q(sql));
  for (const tag of tags) {
    if (tag === 'ERROR') {
      feed(tracker, ERR());
      break;
    }
    feed(tracker, CC(tag));
  }
  feed(tracker, Z(status));
}
