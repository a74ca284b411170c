// RelaySocket: chunks copied out of the shared read buffer intact (many sockets, one buffer),
// 'data' events until a relay takes over, backpressure that stops and restarts reads, 'end' as
// usual, and the owner hearing 'end', 'close' and 'error'. The relay tests run with the shared
// buffer and with Node's default reads (the fallback for a Node.js without user buffers).
import t, { type Test } from 'tap';
import net from 'node:net';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { adoptAccepted, RelaySocket, type SocketOwner } from '../../src/net/relay-socket';

/** A listening server whose (first) accepted socket is adopted as a RelaySocket. */
async function adoptingServer(t: Test, sharedBuffer?: boolean): Promise<{ port: number; accepted: Promise<{ socket: RelaySocket }> }> {
  let resolve!: (v: { socket: RelaySocket }) => void;
  const accepted = new Promise<{ socket: RelaySocket }>((r) => (resolve = r));
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => {
    resolve({ socket: adoptAccepted(s, true, sharedBuffer)! });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, accepted };
}

/** Read everything a socket sends until it ends. */
function drainAll(socket: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  socket.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve, reject) => {
    socket.on('end', () => resolve(Buffer.concat(parts)));
    socket.on('error', reject);
  });
}

t.test('data events before a relay; chunks keep their bytes while other sockets read', async (t) => {
  const a = await adoptingServer(t);
  const b = await adoptingServer(t);
  const ca = net.connect(a.port, '127.0.0.1');
  const cb = net.connect(b.port, '127.0.0.1');
  const [sa, sb] = [(await a.accepted).socket, (await b.accepted).socket];
  const got: Buffer[] = [];
  sa.on('data', (c: Buffer) => got.push(c));
  let otherRead = 0;
  sb.on('data', (c: Buffer) => (otherRead += c.length));
  ca.write(Buffer.alloc(1000, 0x41));
  await t.resolves(waitUntil(() => Buffer.concat(got).length === 1000));
  // The other socket reads into the same buffer; the chunk kept above must not change.
  cb.write(Buffer.alloc(1000, 0x42));
  await waitUntil(() => otherRead === 1000);
  t.ok(Buffer.concat(got).every((x) => x === 0x41), 'first chunk intact after another socket read');
  const ended = once(sa, 'end');
  ca.end();
  await ended;
  t.pass("'end' is emitted for an adopted socket");
  cb.destroy();
  sa.destroy();
  sb.destroy();
});

for (const sharedBuffer of [true, false]) {
  const reads = sharedBuffer ? 'shared buffer' : "Node's default reads";
  t.test(`${reads}: a relay with a slow reader: every byte, in order, with reads stopped while the writer is full`, async (t) => {
    const front = await adoptingServer(t, sharedBuffer);
    const backSrv = net.createServer();
    backSrv.listen(0, '127.0.0.1');
    await once(backSrv, 'listening');
    t.teardown(() => backSrv.close());
    const client = net.connect(front.port, '127.0.0.1');
    const { socket: src } = await front.accepted;
    const backAccepted = once(backSrv, 'connection');
    const dst = new RelaySocket({ sharedBuffer }).connect((backSrv.address() as net.AddressInfo).port, '127.0.0.1');
    const [sink] = (await backAccepted) as [net.Socket];
    const watched: number[] = [];
    src.relayTo(dst, { feed: (chunk) => watched.push(chunk.length) });
    src.on('end', () => dst.end());
    // The far end does not read for a while: the relay must stop reading instead of buffering.
    sink.pause();
    const payload = crypto.randomBytes(16 * 1024 * 1024);
    client.end(payload);
    await waitUntil(() => dst.writableNeedDrain);
    // Not a synchronisation: a soak during which unbounded reads would have kept queueing.
    await new Promise((r) => setTimeout(r, 200));
    // Stopped reads: what waits in dst is at most its high-water mark plus one read's worth.
    t.ok(dst.writableLength <= dst.writableHighWaterMark + 64 * 1024, `reads stopped while the destination was full (${dst.writableLength} bytes queued)`);
    const received = drainAll(sink);
    sink.resume();
    const all = await received;
    t.equal(all.length, payload.length, 'every byte arrived');
    t.equal(crypto.createHash('sha256').update(all).digest('hex'), crypto.createHash('sha256').update(payload).digest('hex'), 'in order and unchanged');
    t.equal(watched.reduce((a, b) => a + b, 0), payload.length, 'the watcher saw every relayed byte');
    src.destroy();
    dst.destroy();
  });
}

t.test("the owner hears the socket's end, close and error", async (t) => {
  const a = await adoptingServer(t);
  const c = net.connect(a.port, '127.0.0.1');
  const { socket } = await a.accepted;
  const heard: string[] = [];
  const owner: SocketOwner = {
    socketEnded: (s) => heard.push(`end:${s === socket}`),
    socketClosed: (s) => heard.push(`close:${s === socket}`),
    socketFailed: (s) => heard.push(`error:${s === socket}`),
  };
  socket.reportTo(owner);
  socket.resume();
  c.end();
  await waitUntil(() => heard.includes('end:true'));
  socket.destroy(new Error('boom'));
  await waitUntil(() => heard.includes('close:true'));
  t.same(heard, ['end:true', 'error:true', 'close:true'], "end, then the error (handled: no throw), then close");
});

async function waitUntil(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
