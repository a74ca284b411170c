// Idle client sessions: a TCP connection that sent a StartupMessage and received ReadyForQuery,
// then sends nothing. That is what an application's idle pooled connection looks like to a
// proxy. Raw sockets (not pg.Client) keep the client's own memory small and out of the way.
// With `tls`, the same inside TLS as libpq opens it with sslmode=require: SSLRequest, the
// answer 'S', a TLS handshake on the same socket (the certificate is not verified), then the
// StartupMessage (PostgreSQL docs, "Message Flow", section "SSL Session Encryption").
// Byte layouts: PostgreSQL docs, "Frontend/Backend Protocol", section "Message Formats".
'use strict';
const net = require('node:net');
const tls = require('node:tls');

function startupMessage(user, database) {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([head, body]);
}

const STARTUP = startupMessage('postgres', 'postgres');
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]); // length 8, code 80877103

/**
 * A TCP connection to port that asked for TLS and completed the handshake: resolves with the
 * TLSSocket (before anything is sent inside it). Rejects on 'N', on anything but one byte before
 * the handshake (the answer must come alone: CVE-2021-23222), on a failed handshake, on timeout.
 */
function openTls(port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: '127.0.0.1', port });
    let done = false;
    const fail = (why) => {
      if (done) return;
      done = true;
      raw.destroy();
      reject(new Error(why));
    };
    raw.setTimeout(timeoutMs, () => fail(`no TLS within ${timeoutMs} ms`));
    raw.on('error', (e) => fail(e.message));
    raw.on('close', () => fail('closed before the answer to SSLRequest'));
    raw.on('connect', () => raw.write(SSL_REQUEST));
    raw.once('data', (answer) => {
      if (answer.length !== 1 || answer[0] !== 0x53) {
        return fail(answer[0] === 0x4e ? "SSLRequest answered 'N': this target has no TLS" : `SSLRequest answered with ${answer.length} bytes starting 0x${answer.subarray(0, 8).toString('hex')}`);
      }
      raw.removeAllListeners('close');
      const socket = tls.connect({ socket: raw, rejectUnauthorized: false });
      socket.on('error', (e) => fail(`TLS: ${e.message}`));
      socket.on('close', () => fail('closed during the TLS handshake'));
      socket.once('secureConnect', () => {
        if (done) return;
        done = true;
        raw.setTimeout(0);
        raw.removeAllListeners('error');
        raw.on('error', () => {}); // the TLSSocket on top reports what matters
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        resolve(socket);
      });
    });
  });
}

/**
 * One session: resolves with the socket once ReadyForQuery ('Z') arrives; rejects on ErrorResponse
 * or close. `tls`: inside TLS (openTls); the socket is then the TLSSocket.
 */
async function openSession(port, timeoutMs, { tls: withTls = false } = {}) {
  const secure = withTls ? await openTls(port, timeoutMs) : undefined;
  return new Promise((resolve, reject) => {
    const socket = secure ?? net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let done = false;
    const fail = (why) => {
      if (done) return;
      done = true;
      socket.destroy();
      reject(new Error(why));
    };
    socket.setTimeout(timeoutMs, () => fail(`no ReadyForQuery within ${timeoutMs} ms`));
    socket.on('error', (e) => fail(e.message));
    socket.on('close', () => fail('closed before ReadyForQuery'));
    if (secure) socket.write(STARTUP);
    else socket.on('connect', () => socket.write(STARTUP));
    socket.on('data', (chunk) => {
      if (done) return;
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5) {
        const type = String.fromCharCode(buf[0]);
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) return;
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        if (type === 'E') return fail(`ErrorResponse: ${body.toString().replace(/\0/g, ' ').trim()}`);
        if (type === 'R' && body.readInt32BE(0) !== 0) return fail(`authentication method ${body.readInt32BE(0)} requested; the benchmark needs trust`);
        if (type === 'Z') {
          done = true;
          socket.setTimeout(0);
          socket.removeAllListeners('data');
          socket.removeAllListeners('close');
          socket.removeAllListeners('error');
          socket.on('error', () => {}); // an idle session that dies is counted by the caller via `alive()`
          resolve(socket);
          return;
        }
      }
    });
  });
}

/**
 * A growing set of idle sessions to one port (inside TLS with `tls`). `growTo(n)` opens sessions
 * `concurrency` at a time until n are established; `closeAll()` sends Terminate ('X') and ends
 * every socket.
 */
function idleSessions(port, { concurrency = 64, timeoutMs = 60_000, tls: withTls = false } = {}) {
  const sockets = [];
  return {
    count: () => sockets.length,
    alive: () => sockets.filter((s) => !s.destroyed).length,
    async growTo(n) {
      let next = sockets.length;
      const worker = async () => {
        while (next < n) {
          next++;
          sockets.push(await openSession(port, timeoutMs, { tls: withTls }));
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    },
    async closeAll() {
      const terminate = Buffer.from([0x58, 0, 0, 0, 4]); // Terminate
      await Promise.all(
        sockets.splice(0).map(
          (s) =>
            new Promise((resolve) => {
              if (s.destroyed) return resolve();
              s.once('close', resolve);
              s.end(terminate);
              setTimeout(() => s.destroy(), 5000).unref();
            }),
        ),
      );
    },
  };
}

/**
 * What a TLS session to port negotiates, from one session opened and closed at once:
 * {protocol, cipher} as Node's client sees them (e.g. TLSv1.3, TLS_AES_256_GCM_SHA384).
 */
async function tlsSessionInfo(port, timeoutMs = 30_000) {
  const socket = await openSession(port, timeoutMs, { tls: true });
  const info = { protocol: socket.getProtocol(), cipher: socket.getCipher()?.standardName ?? socket.getCipher()?.name ?? null };
  await new Promise((resolve) => {
    socket.once('close', resolve);
    socket.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
    setTimeout(() => socket.destroy(), 5000).unref();
  });
  return info;
}

module.exports = { idleSessions, tlsSessionInfo };
