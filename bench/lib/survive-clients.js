// The clients of bench/survive.js: one node-postgres pg.Pool of `total` connections as a SCRAM
// user, each with its own application_name (state pgwarden must carry to the new server), and
// `active` workers that take a connection, run one short statement (an insert or a select,
// alternately) and give it back, a few ms apart. pg-pool hands out its most recently released
// connection, so the workers keep using a handful of connections and the rest stay idle.
// At the fault, snapshot() marks each connection in flight (taken by a worker) or idle; every
// error is filed under the state its connection had then. After the fault, checkAll() takes
// every connection of the pool and runs one statement on it: an idle connection that moved
// answers from the new server with its own application_name.
'use strict';
const { Pool } = require('pg');
const { sleep } = require('./failover-procs');

const WORK_TABLE = 'CREATE TABLE survive_work (id bigserial PRIMARY KEY, worker int NOT NULL, at timestamptz NOT NULL DEFAULT now())';

class SurviveClients {
  constructor({ port, user, password, total, active }) {
    this.total = total;
    this.active = active;
    this.pool = new Pool({ host: '127.0.0.1', port, user, password, database: 'postgres', max: total, idleTimeoutMillis: 0, connectionTimeoutMillis: 120_000 });
    this.clients = new Set();
    this.errors = []; // { at, worker?, where: 'in-flight' | 'idle' | 'new', code, message, phase }
    this.successes = Array.from({ length: active }, () => []); // per worker: [{ end, port }]
    this.faultAt = undefined;
    this.stopped = false;
    this.pool.on('connect', (c) => this.clients.add(c));
    this.pool.on('remove', (c) => this.clients.delete(c));
    // An error on an idle pooled connection (a FATAL from the server, the socket closed).
    this.pool.on('error', (err, c) => this.#record(c, err, 'pool error event'));
  }

  /** Opens all `total` connections (in batches, holding them so that each is a new one) and gives each an application_name. */
  async warm(batch = 24) {
    const held = [];
    let n = 0;
    while (held.length < this.total) {
      const k = Math.min(batch, this.total - held.length);
      const got = await Promise.all(Array.from({ length: k }, () => this.pool.connect()));
      for (const c of got) {
        c.benchName = `survive-${++n}`;
        await c.query(`SET application_name = '${c.benchName}'`);
        held.push(c);
      }
    }
    for (const c of held) c.release();
  }

  start() {
    this.running = Array.from({ length: this.active }, (_, w) => this.#work(w));
  }

  async stop() {
    this.stopped = true;
    await Promise.all(this.running ?? []);
  }

  /** Synchronous: called at the moment of the fault (from the harness's log line right before the SIGKILL). */
  snapshot(at = Date.now()) {
    this.faultAt = at;
    for (const c of this.clients) c.benchAtFault = c.benchBusy ? 'in-flight' : 'idle';
  }

  /** Whether every worker has run a statement on `port` since the fault (before it: at all). */
  allOn(port) {
    const since = this.faultAt ?? 0;
    return this.successes.every((s) => s.some((x) => x.end >= since && x.port === port));
  }

  /** Per worker: the longest gap between two successful statements from 5 s before the fault on (ms). */
  pauses() {
    return this.successes.map((s) => {
      let prev;
      let max = 0;
      for (const { end } of s) {
        if (end < this.faultAt - 5000) continue;
        if (prev !== undefined && end - prev > max) max = end - prev;
        prev = end;
      }
      return max;
    });
  }

  /** One statement on every connection of the pool: { checked, wrongServer, stateLost } (errors go to this.errors). */
  async checkAll(port) {
    const held = await Promise.all(Array.from({ length: this.total }, () => this.pool.connect().catch((e) => this.#record(undefined, e, 'check connect'))));
    const out = { checked: 0, wrongServer: 0, stateLost: 0, lostNames: [] };
    await Promise.all(
      held.filter(Boolean).map(async (c) => {
        let err;
        try {
          const { rows } = await c.query("SELECT current_setting('application_name') AS app, inet_server_port() AS port");
          if (c.benchAtFault === undefined) return; // a connection opened after the fault
          out.checked++;
          if (Number(rows[0].port) !== port) out.wrongServer++;
          if (rows[0].app !== c.benchName) {
            out.stateLost++;
            out.lostNames.push(`${c.benchName}: ${rows[0].app}`);
          }
        } catch (e) {
          err = e;
          this.#record(c, e, 'check');
        } finally {
          c.release(err);
        }
      }),
    );
    return out;
  }

  async end() {
    this.closing = true; // errors from here on are the bench tearing down, not a client's
    await Promise.race([this.pool.end().catch(() => undefined), sleep(10_000)]);
  }

  async #work(w) {
    for (let i = 0; !this.stopped; i++) {
      let c;
      try {
        c = await this.pool.connect();
      } catch (e) {
        this.#record(undefined, e, 'connect', w);
        await sleep(50);
        continue;
      }
      c.benchBusy = true;
      const sentAt = Date.now();
      let err;
      try {
        const sql = i % 2 === 0 ? 'INSERT INTO survive_work (worker) VALUES ($1) RETURNING inet_server_port() AS port' : 'SELECT count(*), inet_server_port() AS port FROM survive_work WHERE worker = $1';
        const { rows } = await c.query(sql, [w]);
        this.successes[w].push({ end: Date.now(), port: Number(rows[0].port) });
      } catch (e) {
        err = e;
        this.#record(c, e, 'query', w, sentAt);
      } finally {
        c.benchBusy = false;
        c.release(err); // an error: the pool drops the connection and opens a new one when needed
      }
      await sleep(3 + Math.random() * 4);
    }
  }

  #record(c, err, phase, worker, sentAt) {
    if (this.closing) return;
    const where = c?.benchAtFault ?? (this.faultAt === undefined ? 'before' : 'new');
    this.errors.push({ at: Date.now(), sentAt, worker, where, phase, code: err?.code, message: String(err?.message ?? err).slice(0, 200), app: c?.benchName });
  }
}

module.exports = { SurviveClients, WORK_TABLE };
