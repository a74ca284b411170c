// TLS sockets as relay ends (net/tls-relay.ts): the client's side, a RelayTlsSocket over an
// adopted accepted socket, and the server leg's, a tls.connect socket given the relay methods by
// tlsRelayEnd. Both relay every byte both ways, in order, to readers that start late (backpressure),
// the watcher sees every byte, and the owner hears the close.
import t, { type Test } from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { adoptAccepted, RelaySocket, type RelayEnd, type SocketOwner } from '../../src/net/relay-socket';
import { RelayTlsSocket, tlsRelayEnd } from '../../src/net/tls-relay';
import { makeTestCa, opensslMissing } from '../helpers/test-ca';
import { waitFor } from '../helpers/proxy';

const missing = opensslMissing();
if (missing) t.comment(`skipped: ${missing}`);

async function listen(t: Test, server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** The first `n` bytes `socket` sends, read only once `readFrom` resolves (a reader that starts late). */
function readLater(socket: net.Socket, n: number, readFrom: Promise<unknown>): Promise<Buffer> {
  socket.pause();
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      parts.push(c);
      if ((got += c.length) >= n) resolve(Buffer.concat(parts));
    });
    socket.on('error', reject);
    void readFrom.then(() => socket.resume());
  });
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Resolves true once `cond` holds, or false after `ms`. */
async function eventually(cond: () => boolean, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

/**
 * Relays between `tlsEnd` and a plain RelaySocket to a sink server, sends `up` from the TLS
 * peer and `down` from the sink, and checks both arrive whole while each reader starts late.
 */
async function relayBothWays(t: Test, tlsEnd: RelayEnd, tlsPeer: tls.TLSSocket, sinkServer: net.Server, sinkPort: number): Promise<void> {
  const sinkAccepted = once(sinkServer, 'connection');
  const plain = new RelaySocket({ noDelay: true }).connect(sinkPort, '127.0.0.1');
  const [sink] = (await sinkAccepted) as [net.Socket];
  let watchedUp = 0;
  let watchedDown = 0;
  plain.holdErrors();
  tlsEnd.relayTo(plain, { feed: (c) => (watchedUp += c.length) });
  plain.relayTo(tlsEnd, { feed: (c) => (watchedDown += c.length) });
  tlsEnd.on('end', () => plain.end());
  const closed: string[] = [];
  const owner: SocketOwner = { socketEnded: () => {}, socketClosed: () => closed.push('close'), socketFailed: (_s, e) => closed.push(`error ${e.message}`) };
  tlsEnd.reportTo(owner);

  // More than the kernel's loopback buffers hold, so a reader that waits makes its writer's
  // relay full (reads on the other side stop); each reader starts once that happened, or after
  // a while on a machine whose buffers are larger still.
  const up = crypto.randomBytes(16 * 1024 * 1024);
  const down = crypto.randomBytes(16 * 1024 * 1024);
  const upFull = eventually(() => plain.writableNeedDrain);
  const downFull = eventually(() => tlsEnd.writableNeedDrain);
  const atSink = readLater(sink, up.length, upFull);
  const atPeer = readLater(tlsPeer, down.length, downFull);
  tlsPeer.write(up);
  sink.write(down);
  const [gotUp, gotDown] = await Promise.all([atSink, atPeer]);
  t.comment(`relay full before its reader started: up ${await upFull}, down ${await downFull}`);
  t.equal(sha(gotUp), sha(up), 'every byte from the TLS peer arrived at the server, in order');
  t.equal(sha(gotDown), sha(down), 'every byte from the server arrived at the TLS peer, in order');
  t.equal(watchedUp, up.length, 'the watcher saw every byte going up');
  t.equal(watchedDown, down.length, 'the watcher saw every byte coming down');
  // The peer says goodbye properly (close_notify, FIN): the relay end closes, without an error.
  tlsPeer.end();
  await waitFor('the relay end to close', () => closed.length > 0);
  t.same(closed, ['close'], 'the owner heard the close, and no error');
  sink.destroy();
  plain.destroy();
}

t.test("the client's side: a RelayTlsSocket over an adopted accepted socket", { skip: missing }, async (t) => {
  const ca = makeTestCa(t, 'tls-relay');
  const issued = ca.issue('server', 'localhost', ['DNS:localhost', 'IP:127.0.0.1']);
  const secureContext = tls.createSecureContext({ cert: readFileSync(issued.certFile), key: readFileSync(issued.keyFile) });
  let accepted!: (s: RelayTlsSocket) => void;
  const tlsAccepted = new Promise<RelayTlsSocket>((r) => (accepted = r));
  const front = net.createServer({ pauseOnConnect: true }, (s) => {
    accepted(new RelayTlsSocket(adoptAccepted(s, false)!, { secureContext }));
  });
  const frontPort = await listen(t, front);
  const sinkServer = net.createServer();
  const sinkPort = await listen(t, sinkServer);

  const peer = tls.connect({ port: frontPort, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(ca.caFile) });
  const server = await tlsAccepted;
  await Promise.all([once(peer, 'secureConnect'), once(server, 'secure')]);
  t.equal(tlsRelayEnd(server), server, 'tlsRelayEnd hands a RelayTlsSocket back as it is');
  t.notOk(Object.hasOwn(server, 'relayTo'), 'the relay methods come from the prototype');
  await relayBothWays(t, server, peer, sinkServer, sinkPort);
});

t.test("the server leg's side: a tls.connect socket made a relay end", { skip: missing }, async (t) => {
  const ca = makeTestCa(t, 'tls-relay-leg');
  const issued = ca.issue('server', 'localhost', ['DNS:localhost', 'IP:127.0.0.1']);
  let accepted!: (s: tls.TLSSocket) => void;
  const tlsAccepted = new Promise<tls.TLSSocket>((r) => (accepted = r));
  const tlsServer = tls.createServer({ cert: readFileSync(issued.certFile), key: readFileSync(issued.keyFile) }, (s) => accepted(s));
  const tlsPort = await listen(t, tlsServer);
  const sinkServer = net.createServer();
  const sinkPort = await listen(t, sinkServer);

  const leg = tls.connect({ port: tlsPort, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(ca.caFile) });
  await once(leg, 'secureConnect');
  const far = await tlsAccepted;
  await relayBothWays(t, tlsRelayEnd(leg), far, sinkServer, sinkPort);
});
