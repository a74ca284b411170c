// The steady mixed load of bench/soak, through pgwarden's rw and ro listeners:
//   writer      a new connection per write (INSERT of a unique id), one at a time; every
//               acknowledged write is kept with the server that took it (inet_server_port()) and
//               that server's timeline at that moment — the write-safety verdicts use both;
//   readers     short-lived sessions on ro (connect, one query, close);
//   long-lived  sessions on rw (an INSERT every 500 ms, kept like the writer's) and ro (SELECT 1)
//               that live 10–30 s, then reconnect
//               (after an error at once); half of them and a third of the writes use TLS (pgwarden
//               terminates it);
//   cancels     `SELECT pg_sleep(10)` cancelled after 100 ms with a CancelRequest to the listener
//               (the key pgwarden recorded must reach the right server: 57014 expected).
// pause() lets the in-flight attempts finish and keeps the long-lived sessions connected and
// steady, so that the process can be measured with a known number of sessions.
'use strict';
const net = require('node:net');
const { Client } = require('pg');
const { sleep } = require('./failover-procs');

const TABLE = 'soak_writes';
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${TABLE} (id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`;
const TIMELINE_SQL = `('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int`;
const TLS = { rejectUnauthorized: false };

function client(port, { tls = false, queryTimeout = 5000 } = {}) {
  const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000, query_timeout: queryTimeout, ssl: tls ? TLS : false });
  c.on('error', () => {});
  return c;
}

class Counter {
  constructor() {
    this.ok = 0;
    this.failed = 0;
    this.errors = {};
  }
  fail(err) {
    this.failed++;
    const key = err?.code ?? String(err?.message ?? err).slice(0, 60);
    this.errors[key] = (this.errors[key] ?? 0) + 1;
  }
}

class SoakLoad {
  /** @param {{ rw: number, ro: number, longLived?: number, readers?: number, lifespanMs?: [number, number] }} opts */
  constructor({ rw, ro, longLived = 6, readers = 2, lifespanMs = [10_000, 30_000] }) {
    this.ports = { rw, ro };
    this.lifespanMs = lifespanMs;
    this.longLivedCount = longLived;
    this.readerCount = readers;
    /** Acknowledged writes: [id, serverPort, timeline, startMs, endMs]. */
    this.acked = [];
    this.stats = { writes: new Counter(), reads: new Counter(), longLived: new Counter(), cancels: new Counter(), tls: new Counter() };
    this.running = false;
    this.paused = false;
    this.inFlight = 0;
    this.seq = 0;
    this.loops = [];
    this.long = [];
  }

  start() {
    this.running = true;
    this.loops.push(this.#loop(() => this.#write(), 20));
    for (let i = 0; i < this.readerCount; i++) this.loops.push(this.#loop(() => this.#read(i), 100));
    this.loops.push(this.#loop(() => this.#cancel(), 1000));
    for (let i = 0; i < this.longLivedCount; i++) {
      const slot = { port: i % 2 === 0 ? this.ports.rw : this.ports.ro, tls: i % 4 < 2, client: undefined, connected: false };
      this.long.push(slot);
      this.loops.push(this.#longLived(slot));
    }
  }

  /** No new short-lived attempts; resolves when none is in flight and every long-lived session is connected. */
  async pause(timeoutMs = 60_000) {
    this.paused = true;
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 || this.long.some((s) => !s.connected)) {
      if (Date.now() > deadline) return false;
      await sleep(50);
    }
    return true;
  }

  resume() {
    this.paused = false;
  }

  async stop() {
    this.running = false;
    await Promise.all(this.loops);
  }

  async #loop(attempt, everyMs) {
    while (this.running) {
      if (this.paused) {
        await sleep(50);
        continue;
      }
      const started = Date.now();
      this.inFlight++;
      try {
        await attempt();
      } finally {
        this.inFlight--;
      }
      const pause = started + everyMs - Date.now();
      if (pause > 0) await sleep(pause);
    }
  }

  async #write() {
    const id = `w${++this.seq}`;
    const tls = this.seq % 3 === 0;
    const c = client(this.ports.rw, { tls });
    const start = Date.now();
    try {
      await c.connect();
      const { rows } = await c.query(`INSERT INTO ${TABLE} (id) VALUES ($1) RETURNING inet_server_port() AS port, ${TIMELINE_SQL} AS tl`, [id]);
      this.acked.push([id, rows[0].port, rows[0].tl, start, Date.now()]);
      this.stats.writes.ok++;
      if (tls) this.stats.tls.ok++;
    } catch (err) {
      this.stats.writes.fail(err);
      if (tls) this.stats.tls.fail(err);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async #read() {
    const c = client(this.ports.ro);
    try {
      await c.connect();
      await c.query('SELECT pg_is_in_recovery()');
      this.stats.reads.ok++;
    } catch (err) {
      this.stats.reads.fail(err);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async #cancel() {
    const port = this.seq % 2 === 0 ? this.ports.rw : this.ports.ro;
    const c = client(port, { queryTimeout: 15_000 });
    try {
      await c.connect();
      // The outcome is taken at once: the query may fail before the cancel is even sent.
      const outcome = c.query('SELECT pg_sleep(10)').then(() => new Error('not cancelled'), (err) => err);
      await sleep(100);
      await sendCancel(port, c.processID, c.secretKey);
      const err = await outcome;
      if (err?.code === '57014') this.stats.cancels.ok++;
      else this.stats.cancels.fail(err);
    } catch (err) {
      this.stats.cancels.fail(err);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async #longLived(slot) {
    while (this.running) {
      const c = client(slot.port, { tls: slot.tls, queryTimeout: 5000 });
      const [shortest, longest] = this.lifespanMs;
      const lifespan = shortest + Math.random() * (longest - shortest);
      const born = Date.now();
      try {
        await c.connect();
        slot.connected = true;
        // While paused the session stays (the measurement expects it), however old it is.
        while (this.running && (this.paused || Date.now() - born < lifespan)) {
          if (slot.port === this.ports.rw) {
            // Long-lived sessions on rw write too: an acknowledged write on a session that
            // crossed faults must be on the final primary like any other.
            const id = `l${++this.seq}`;
            const start = Date.now();
            const { rows } = await c.query(`INSERT INTO ${TABLE} (id) VALUES ($1) RETURNING inet_server_port() AS port, ${TIMELINE_SQL} AS tl`, [id]);
            this.acked.push([id, rows[0].port, rows[0].tl, start, Date.now()]);
          } else await c.query('SELECT 1');
          this.stats.longLived.ok++;
          await sleep(500);
        }
      } catch (err) {
        this.stats.longLived.fail(err);
        await sleep(200);
      } finally {
        slot.connected = false;
        await c.end().catch(() => {});
      }
    }
  }

  /** Totals since the last call (for the per-fault rows) and since the start. */
  snapshot() {
    const out = {};
    for (const [k, v] of Object.entries(this.stats)) out[k] = { ok: v.ok, failed: v.failed, errors: { ...v.errors } };
    return out;
  }
}

/** A CancelRequest (length 16, code 80877102, pid, key) on a new connection to `port`. */
function sendCancel(port, pid, key) {
  return new Promise((resolve) => {
    const buf = Buffer.alloc(16);
    buf.writeInt32BE(16, 0);
    buf.writeInt32BE(80877102, 4);
    buf.writeInt32BE(pid | 0, 8);
    buf.writeInt32BE(key | 0, 12);
    const s = net.connect(port, '127.0.0.1', () => s.end(buf));
    s.setTimeout(5000, () => s.destroy());
    s.on('error', () => {});
    s.on('close', () => resolve());
  });
}

/**
 * Write-safety verdicts against the final primary's table: `lost` are acknowledged writes that
 * are not there; `stale` are writes that started after the soak had confirmed a newer timeline
 * and were still acknowledged by a server on an older one.
 */
function writeVerdicts(acked, idsOnPrimary, promotions) {
  const present = new Set(idsOnPrimary);
  const lost = acked.filter(([id]) => !present.has(id)).map(([id, port, tl]) => ({ id, port, tl }));
  const stale = [];
  for (const [id, port, tl, start] of acked) {
    const newer = promotions.find((p) => p.timeline > tl && p.at < start);
    if (newer !== undefined) stale.push({ id, port, tl, newerTimeline: newer.timeline, confirmedAt: newer.at, writeStarted: start });
  }
  return { acked: acked.length, lost, stale };
}

module.exports = { SoakLoad, writeVerdicts, CREATE_TABLE, TABLE, sendCancel };
