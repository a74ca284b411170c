// A raw-protocol PostgreSQL session whose every message, both ways and in order, also goes to a
// session state tracker — the way pgwarden's relay feeds it — so tests can run statements on a
// real server and check what the tracker concluded. Trust authentication (the cluster harness
// trusts 127.0.0.0/8). Text results only.
import net from 'node:net';
import { once } from 'node:events';
import type { SessionStateTracker } from '../../src/survive/contracts';
import { startupPacket } from './raw-client';
import type { Msg } from './protocol-messages';

export interface Reply {
  /** Every server message of the exchange, in order. */
  readonly messages: readonly { type: string; body: Buffer }[];
  /** Text columns of each DataRow (null for SQL NULL). */
  readonly rows: (string | null)[][];
  /** SQLSTATE and message of each ErrorResponse. */
  readonly errors: { code: string; message: string }[];
  readonly tags: string[];
}

const SYNC_POINTS = new Set([0x51 /* Q */, 0x53 /* S */, 0x46 /* F */]);

export class TracedSession {
  private buf: Buffer = Buffer.alloc(0);
  private inbox: { type: number; body: Buffer }[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly tracker: SessionStateTracker | undefined,
  ) {
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  /** Connects, logs in, feeds the tracker (if any) from the login on, and resolves at the first ReadyForQuery. */
  static async open(port: number, tracker?: SessionStateTracker): Promise<TracedSession> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    const s = new TracedSession(socket, tracker);
    socket.write(startupPacket());
    const login = await s.collect(1);
    if (login.errors.length > 0) throw new Error(`login failed: ${login.errors[0]!.message}`);
    return s;
  }

  /** Sends client messages and waits for the ReadyForQuery of each Query, Sync or FunctionCall among them. */
  async send(...msgs: readonly Msg[]): Promise<Reply> {
    let expect = 0;
    const frames: Buffer[] = [];
    for (const m of msgs) {
      const head = Buffer.alloc(5);
      head[0] = m.type;
      head.writeInt32BE(4 + m.body.length, 1);
      frames.push(head, m.body);
      this.tracker?.fromClient(m.type, m.body);
      if (SYNC_POINTS.has(m.type)) expect++;
    }
    this.socket.write(Buffer.concat(frames));
    return this.collect(expect);
  }

  /** One simple Query. */
  query(sql: string): Promise<Reply> {
    return this.send({ from: 'client', type: 0x51, body: Buffer.from(`${sql}\0`, 'utf8') });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.socket.end(Buffer.from([0x58, 0, 0, 0, 4]));
    await once(this.socket, 'close');
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 5) {
      const len = this.buf.readInt32BE(1);
      if (this.buf.length < 1 + len) break;
      const type = this.buf[0]!;
      const body = Buffer.from(this.buf.subarray(5, 1 + len));
      this.buf = this.buf.subarray(1 + len);
      this.tracker?.fromServer(type, body);
      this.inbox.push({ type, body });
    }
    this.wake?.();
  }

  /** Waits for `readyCount` ReadyForQuery messages; throws if the server closes first. */
  private async collect(readyCount: number): Promise<Reply> {
    const reply: Reply = { messages: [], rows: [], errors: [], tags: [] };
    let seen = 0;
    while (seen < readyCount) {
      const m = this.inbox.shift();
      if (m === undefined) {
        if (this.closed) throw new Error('the server closed the connection');
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      (reply.messages as { type: string; body: Buffer }[]).push({ type: String.fromCharCode(m.type), body: m.body });
      if (m.type === 0x5a) seen++;
      else if (m.type === 0x44) reply.rows.push(dataRow(m.body));
      else if (m.type === 0x43) reply.tags.push(m.body.toString('utf8', 0, m.body.indexOf(0)));
      else if (m.type === 0x45) reply.errors.push(errorOf(m.body));
    }
    return reply;
  }
}

function dataRow(body: Buffer): (string | null)[] {
  const n = body.readInt16BE(0);
  const out: (string | null)[] = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) out.push(null);
    else {
      out.push(body.toString('utf8', at, at + len));
      at += len;
    }
  }
  return out;
}

function errorOf(body: Buffer): { code: string; message: string } {
  const f: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    f[String.fromCharCode(body[i]!)] = body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return { code: f.C ?? '', message: f.M ?? '' };
}
