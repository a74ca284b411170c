// The idle sessions of bench/soak --idle N: N plain sockets that log in through pgwarden's idle
// listener (StartupMessage, trust authentication, ReadyForQuery) and then do nothing, for the
// whole run. A raw socket and a few bytes of parsing each, so that the holder is not the limit
// (a node-postgres Client each would be). ask() sends `SELECT 1` on some of them and waits for
// the ReadyForQuery after the answer: the soak samples them during the run and asks every one
// at the end. A session that closes is counted, with when, and never reopened.
'use strict';
const net = require('node:net');

function startupMessage() {
  const params = Buffer.from('user\0postgres\0database\0postgres\0application_name\0soak-idle\0\0');
  const buf = Buffer.alloc(8 + params.length);
  buf.writeInt32BE(buf.length, 0);
  buf.writeInt32BE(196608, 4);
  params.copy(buf, 8);
  return buf;
}

const QUERY = (() => {
  const sql = Buffer.from('SELECT 1\0');
  const buf = Buffer.alloc(5 + sql.length);
  buf.write('Q', 0);
  buf.writeInt32BE(4 + sql.length, 1);
  sql.copy(buf, 5);
  return buf;
})();

class IdleSession {
  constructor(port) {
    this.port = port;
    this.buf = Buffer.alloc(0);
    this.waiter = undefined;
    this.closedAt = undefined;
    this.error = undefined;
    this.ready = false;
  }

  /** Resolves true once logged in (ReadyForQuery), false on an error or close. */
  open(timeoutMs) {
    return new Promise((resolve) => {
      const s = net.connect(this.port, '127.0.0.1');
      this.socket = s;
      s.setNoDelay(true);
      const timer = setTimeout(() => this.#settle(false, 'login timeout'), timeoutMs);
      this.waiter = (ok) => {
        clearTimeout(timer);
        this.ready = ok;
        resolve(ok);
      };
      s.on('connect', () => s.write(startupMessage()));
      s.on('data', (d) => this.#data(d));
      s.on('error', (err) => (this.error ??= err.code ?? err.message));
      s.on('close', () => {
        this.closedAt ??= Date.now();
        this.#settle(false, 'closed');
      });
    });
  }

  /** `SELECT 1`; resolves true on its ReadyForQuery, false on an error, close or timeout. */
  ask(timeoutMs) {
    if (this.closedAt !== undefined) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#settle(false, 'query timeout'), timeoutMs);
      this.waiter = (ok) => {
        clearTimeout(timer);
        resolve(ok);
      };
      this.answered = false;
      this.socket.write(QUERY);
    });
  }

  #settle(ok, why) {
    if (!ok) this.error ??= why;
    const w = this.waiter;
    this.waiter = undefined;
    w?.(ok);
  }

  #data(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 5) {
      const len = this.buf.readInt32BE(1);
      if (this.buf.length < 1 + len) return;
      const type = String.fromCharCode(this.buf[0]);
      this.buf = this.buf.subarray(1 + len);
      if (type === 'E') this.failed = true;
      if (type === 'Z') {
        const ok = !this.failed;
        this.failed = false;
        this.#settle(ok, 'error response');
      }
    }
    if (this.buf.length === 0) this.buf = Buffer.alloc(0); // drop the reference to the last chunk
  }

  close() {
    this.socket?.destroy();
  }
}

class IdleHolder {
  constructor(port) {
    this.port = port;
    this.sessions = [];
    this.samples = [];
  }

  /** Opens `n` sessions, `batch` at a time; resolves with how many logged in and the first errors. */
  async open(n, { batch = 50, timeoutMs = 60_000, onProgress } = {}) {
    const failures = {};
    for (let i = 0; i < n; i += batch) {
      const group = [];
      for (let j = i; j < Math.min(n, i + batch); j++) group.push(new IdleSession(this.port));
      const ok = await Promise.all(group.map((s) => s.open(timeoutMs)));
      group.forEach((s, k) => {
        if (ok[k]) this.sessions.push(s);
        else {
          failures[s.error ?? 'unknown'] = (failures[s.error ?? 'unknown'] ?? 0) + 1;
          s.close();
        }
      });
      onProgress?.(this.sessions.length);
      if (Object.keys(failures).length > 0 && this.sessions.length < i + batch) break; // a limit reached: stop ramping
    }
    return { opened: this.sessions.length, failures };
  }

  /** `SELECT 1` on `count` sessions picked at random (all when count is undefined). */
  async ask(count, { timeoutMs = 30_000, batch = 500 } = {}) {
    const pick = count === undefined ? this.sessions : shuffle([...this.sessions]).slice(0, count);
    let ok = 0;
    for (let i = 0; i < pick.length; i += batch) {
      const answers = await Promise.all(pick.slice(i, i + batch).map((s) => s.ask(timeoutMs)));
      ok += answers.filter(Boolean).length;
    }
    const result = { t: Date.now(), asked: pick.length, ok, closed: this.closed() };
    this.samples.push(result);
    return result;
  }

  closed() {
    return this.sessions.filter((s) => s.closedAt !== undefined).length;
  }

  closeAll() {
    for (const s of this.sessions) s.close();
  }
}

function shuffle(a) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

module.exports = { IdleHolder };
