// A minimal PostgreSQL client on a raw socket for crowd tests: it sends a StartupMessage (trust
// authentication) and reports how the startup ended — ReadyForQuery, or the server's (or
// pgwarden's) ErrorResponse — without the cost of a driver per connection. After
// ReadyForQuery it sends Terminate and closes.
import net from 'node:net';

export type StartupOutcome = { readonly ok: true } | { readonly ok: false; readonly code?: string; readonly message: string };

/** A protocol 3.0 StartupMessage (protocol docs, "StartupMessage"). */
export function startupPacket(user = 'postgres', database = 'postgres'): Buffer {
  const params = `user\0${user}\0database\0${database}\0\0`;
  const b = Buffer.alloc(8 + Buffer.byteLength(params));
  b.writeInt32BE(b.length, 0);
  b.writeInt32BE(196608, 4);
  b.write(params, 8, 'utf8');
  return b;
}

const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

/** The fields of an ErrorResponse body (protocol docs, "Error and Notice Message Fields"). */
function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    out[String.fromCharCode(body[i]!)] = body.subarray(i + 1, end).toString('utf8');
    i = end + 1;
  }
  return out;
}

/**
 * Connects to 127.0.0.1:`port`, sends the startup and resolves with its outcome. `connected`
 * resolves once TCP is up (so a crowd can be opened in batches). Never rejects: a socket error
 * or a close before ReadyForQuery is an outcome.
 */
export function rawStartup(port: number): { connected: Promise<void>; outcome: Promise<StartupOutcome> } {
  let onConnected!: () => void;
  const connected = new Promise<void>((r) => (onConnected = r));
  const outcome = new Promise<StartupOutcome>((resolve) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (o: StartupOutcome) => {
      if (done) return;
      done = true;
      resolve(o);
    };
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      onConnected();
      s.write(startupPacket());
    });
    s.on('data', (chunk) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 5) {
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) return;
        const type = buf[0];
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        if (type === 0x5a /* Z */) {
          finish({ ok: true });
          s.end(TERMINATE);
          return;
        }
        if (type === 0x45 /* E */) {
          const f = errorFields(body);
          finish({ ok: false, code: f.C, message: f.M ?? 'error without a message' });
        }
      }
    });
    s.on('error', (err) => {
      onConnected();
      finish({ ok: false, message: `socket error: ${err.message}` });
    });
    s.on('close', () => {
      onConnected();
      finish({ ok: false, message: 'closed before ReadyForQuery' });
    });
  });
  return { connected, outcome };
}
