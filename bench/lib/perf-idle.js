// Idle client sessions: a TCP connection that sent a StartupMessage and received ReadyForQuery,
// then sends nothing. That is what an application's idle pooled connection looks like to a
// proxy. Raw sockets (not pg.Client) keep the client's own memory small and out of the way.
// Byte layouts: PostgreSQL docs, "Frontend/Backend Protocol", section "Message Formats".
'use strict';
const net = require('node:net');

function startupMessage(user, database) {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([head, body]);
}

const STARTUP = startupMessage('postgres', 'postgres');

/** One session: resolves with the socket once ReadyForQuery ('Z') arrives; rejects on ErrorResponse or close. */
function openSession(port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
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
    socket.on('connect', () => socket.write(STARTUP));
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
 * A growing set of idle sessions to one port. `growTo(n)` opens sessions `concurrency` at a
 * time until n are established; `closeAll()` sends Terminate ('X') and ends every socket.
 */
function idleSessions(port, { concurrency = 64, timeoutMs = 60_000 } = {}) {
  const sockets = [];
  return {
    count: () => sockets.length,
    alive: () => sockets.filter((s) => !s.destroyed).length,
    async growTo(n) {
      let next = sockets.length;
      const worker = async () => {
        while (next < n) {
          next++;
          sockets.push(await openSession(port, timeoutMs));
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

module.exports = { idleSessions };
