// Chunks relayed into a TLS socket go straight to its handle when nothing else is in flight
// (net/tls-direct-write.ts). A TLS handle takes one write at a time, so what matters: relayed
// chunks, the stream's own writes and its end keep their order (no second write is ever started
// on the handle: that would abort the process), the byte count includes direct writes, and a
// client that does not read stops the relay's reads instead of making pgwarden buffer.
import t, { type Test } from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { adoptAccepted, type RelayEnd, type RelaySocket } from '../../src/net/relay-socket';
import { tlsRelayEnd } from '../../src/net/tls-relay';
import { enableDirectWrites } from '../../src/net/tls-direct-write';
import { makeTestCa, opensslMissing } from '../helpers/test-ca';

/** A TLS server end as a session makes it (a TLSSocket over the accepted socket, with the relay methods) and its client. */
async function tlsPair(t: Test): Promise<{ server: tls.TLSSocket & RelayEnd; client: tls.TLSSocket }> {
  const issued = makeTestCa(t).issue('server', 'localhost', ['IP:127.0.0.1']);
  const options = { key: readFileSync(issued.keyFile), cert: readFileSync(issued.certFile) };
  let resolve!: (s: tls.TLSSocket & RelayEnd) => void;
  const accepted = new Promise<tls.TLSSocket & RelayEnd>((r) => (resolve = r));
  const srv = net.createServer({ allowHalfOpen: true }, (raw) => {
    const s = new tls.TLSSocket(raw, { ...options, isServer: true });
    s.once('secure', () => resolve(tlsRelayEnd(s) as tls.TLSSocket & RelayEnd));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => srv.close());
  const client = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
  const server = await accepted;
  t.teardown(() => {
    client.destroy();
    server.destroy();
  });
  return { server, client };
}

/** A plain socket adopted as a RelaySocket (the backend's end of a session), and its peer. */
async function plainPair(t: Test): Promise<{ src: RelaySocket; peer: net.Socket }> {
  let resolve!: (s: RelaySocket) => void;
  const accepted = new Promise<RelaySocket>((r) => (resolve = r));
  const srv = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => resolve(adoptAccepted(s, true)!));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => srv.close());
  const peer = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const src = await accepted;
  t.teardown(() => {
    peer.destroy();
    src.destroy();
  });
  return { src, peer };
}

function readAll(socket: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  socket.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve, reject) => {
    socket.on('end', () => resolve(Buffer.concat(parts)));
    socket.on('error', reject);
  });
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

t.test('relayed chunks, the stream’s own writes and its end keep their order', { skip: opensslMissing() }, async (t) => {
  const { server, client } = await tlsPair(t);
  t.ok(enableDirectWrites(server), 'this Node.js can write to the TLS handle directly');
  const received = readAll(client);
  const sent: Buffer[] = [];
  const relay = (b: Buffer) => (sent.push(b), server.relayWrite(b));
  const own = (b: Buffer) => (sent.push(b), server.write(b));
  relay(crypto.randomBytes(100));
  t.equal(server.writableLength, 0, 'the first chunk went to the handle, not through the stream');
  // While it is in flight: a write of the stream's own (held until the direct one completes),
  // relayed chunks (queued behind it in the stream), then the end (close_notify held as well).
  own(Buffer.from('own write'));
  for (let i = 0; i < 50; i++) relay(crypto.randomBytes(1 + crypto.randomInt(20_000)));
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 50; i++) {
    relay(crypto.randomBytes(1 + crypto.randomInt(3000)));
    if (i % 7 === 0) own(Buffer.from(`own ${i}`));
    if (i % 5 === 0) await new Promise((r) => setImmediate(r));
  }
  const last = Buffer.from('the end');
  sent.push(last);
  server.end(last);
  const all = await received;
  const expected = Buffer.concat(sent);
  t.equal(all.length, expected.length, 'every byte arrived, then the end');
  t.equal(sha(all), sha(expected), 'in the order written');
  if (!server.writableFinished) await once(server, 'finish');
  t.equal(server.bytesWritten, expected.length, 'bytesWritten counts direct and stream writes');
});

t.test('a client that does not read stops the relay’s reads; every byte arrives once it reads', { skip: opensslMissing() }, async (t) => {
  const { server, client } = await tlsPair(t);
  const { src, peer } = await plainPair(t);
  src.relayTo(server);
  src.on('end', () => server.end());
  client.pause();
  // More than the loopback's socket buffers hold in both directions, so that a relay that did
  // not stop would read it all.
  const payload = crypto.randomBytes(64 * 1024 * 1024);
  peer.end(payload);
  // The reads stop either in the stream (a full Writable) or with one large direct write in
  // flight; either way the relay's read count stays put once the client's buffers are full.
  await waitUntil(steady(() => src.bytesRead));
  // Not a synchronisation: a soak during which unbounded reads would have kept queueing.
  await new Promise((r) => setTimeout(r, 200));
  const queued = server.writableLength;
  t.ok(queued <= server.writableHighWaterMark + 64 * 1024, `reads stopped while the client was full (${queued} bytes queued)`);
  t.ok(src.bytesRead < payload.length, `the relay stopped reading (${src.bytesRead} of ${payload.length} bytes read)`);
  const received = readAll(client);
  client.resume();
  const all = await received;
  t.equal(all.length, payload.length, 'every byte arrived');
  t.equal(sha(all), sha(payload), 'in order and unchanged');
  t.equal(server.bytesWritten, payload.length, 'bytesWritten counts them all');
});

t.test('a client gone while a direct write is in flight: the socket fails or closes, nothing throws', { skip: opensslMissing() }, async (t) => {
  const { server, client } = await tlsPair(t);
  const errors: Error[] = [];
  server.on('error', (e) => errors.push(e));
  client.on('error', () => undefined);
  client.destroy();
  // Keep relaying into the dead client until the socket notices (as a session does until it ends).
  for (let i = 0; i < 1000 && server.writable; i++) {
    server.relayWrite(crypto.randomBytes(8192));
    await new Promise((r) => setImmediate(r));
  }
  server.end();
  await waitUntil(() => server.destroyed);
  t.ok(errors.every((e) => /ECONNRESET|EPIPE/.test((e as NodeJS.ErrnoException).code ?? e.message)), `only a reset or broken pipe (${errors.map((e) => e.message).join(', ') || 'none'})`);
});

/** A condition: `value` is above 0 and the same as at the last two looks (10 ms apart). */
function steady(value: () => number): () => boolean {
  const seen: number[] = [];
  return () => {
    seen.push(value());
    return seen.length >= 3 && seen.at(-1)! > 0 && seen.at(-1) === seen.at(-3);
  };
}

async function waitUntil(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
