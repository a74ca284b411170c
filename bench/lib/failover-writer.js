// The application side of bench/failover: one client that writes on a NEW connection every
// `everyMs` — or right after the previous attempt when that took longer — with a short connect
// timeout and query timeout, as an application retrying its writes would. One attempt at a time
// on purpose: many overlapping attempts that all wait out their timeouts pile up, and on a busy
// machine the client itself then becomes the bottleneck and every attempt times out. Every
// attempt is recorded with its start and end time, success or error, and the port of the server
// that took the write (inet_server_port()), so "the first write on the new primary" needs no
// guessing.
'use strict';
const { Client } = require('pg');

const TABLE = 'bench_failover';
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${TABLE} (id bigserial PRIMARY KEY, target text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`;

class WriteLoop {
  /**
   * @param {{ port: number, target: string, everyMs?: number, connectTimeoutMs?: number,
   *           queryTimeoutMs?: number }} opts
   */
  constructor(opts) {
    this.opts = { everyMs: 20, connectTimeoutMs: 1000, queryTimeoutMs: 1000, ...opts };
    /** @type {{ start: number, connected?: number, end: number, ok: boolean, serverPort?: number, error?: string }[]} */
    this.attempts = [];
    this.running = false;
    this.done = Promise.resolve();
  }

  start() {
    this.running = true;
    this.done = (async () => {
      while (this.running) {
        const started = Date.now();
        await this.attempt();
        const pause = started + this.opts.everyMs - Date.now();
        if (pause > 0 && this.running) await new Promise((resolve) => setTimeout(resolve, pause));
      }
    })();
  }

  /** Stops the loop after the attempt in progress (it has timeouts, so this ends). */
  async stop() {
    this.running = false;
    await this.done;
  }

  /** The first successful attempt that ended at or after `since` on a server listening on `serverPort`. */
  firstSuccess(since, serverPort) {
    let first;
    for (const a of this.attempts) {
      if (a.ok && a.end >= since && a.serverPort === serverPort && (first === undefined || a.end < first.end)) first = a;
    }
    return first;
  }

  async attempt() {
    const start = Date.now();
    const client = new Client({
      host: '127.0.0.1',
      port: this.opts.port,
      user: 'postgres',
      database: 'postgres',
      connectionTimeoutMillis: this.opts.connectTimeoutMs,
      query_timeout: this.opts.queryTimeoutMs,
    });
    client.on('error', () => {}); // errors after connect surface through the awaited calls
    const record = { start, end: 0, ok: false };
    try {
      await client.connect();
      record.connected = Date.now();
      const { rows } = await client.query(`INSERT INTO ${TABLE} (target) VALUES ($1) RETURNING inet_server_port() AS port`, [this.opts.target]);
      record.ok = true;
      record.serverPort = rows[0]?.port;
    } catch (err) {
      record.error = shortError(err);
    } finally {
      record.end = Date.now();
      this.attempts.push(record);
      client.end().catch(() => {});
    }
  }
}

/**
 * Clients that arrive on their own schedule: every `everyMs` a new client connects (without
 * waiting for the ones before) and writes once, with a long connect timeout — an application
 * that is willing to wait for its connection. Each arrival is recorded like a WriteLoop attempt;
 * bench/failover-patroni counts those that arrived while no server took writes.
 */
class Arrivals {
  /** @param {{ port: number, target: string, everyMs?: number, connectTimeoutMs?: number, queryTimeoutMs?: number }} opts */
  constructor(opts) {
    this.opts = { everyMs: 200, connectTimeoutMs: 15_000, queryTimeoutMs: 2000, ...opts };
    /** @type {{ start: number, end: number, ok: boolean, serverPort?: number, error?: string }[]} */
    this.arrivals = [];
    this.pending = new Set();
    this.timer = undefined;
  }

  start() {
    this.timer = setInterval(() => {
      const p = this.arrive();
      this.pending.add(p);
      p.finally(() => this.pending.delete(p));
    }, this.opts.everyMs);
  }

  /** No new arrivals; resolves once every arrival in progress has ended (each has its timeouts). */
  async stop() {
    clearInterval(this.timer);
    await Promise.all([...this.pending]);
  }

  async arrive() {
    const loop = new WriteLoop(this.opts);
    await loop.attempt();
    this.arrivals.push(loop.attempts[0]);
  }
}

// "57P01 terminating connection ..." or "ECONNREFUSED": enough to tell the failure kinds apart
// in the raw JSON without storing whole stacks.
function shortError(err) {
  const code = err?.code ?? '';
  const message = String(err?.message ?? err).split('\n')[0].slice(0, 120);
  return code ? `${code} ${message}` : message;
}

module.exports = { WriteLoop, Arrivals, CREATE_TABLE };
