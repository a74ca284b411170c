// The database side of bench/soak: a primary and two replicas made by the cluster harness
// (src/harness/cluster.ts), with synchronous replication so that a write acknowledged to a client
// is on at least one replica (`synchronous_standby_names = ANY 1 (pg1, pg2, pg3)`: whichever
// servers are replicas at the moment), and what the faults need beyond the harness: which server
// is the primary now, the replica that received the most WAL, pointing a replica at a new primary
// (ALTER SYSTEM + reload: its client sessions stay), turning an old primary into a replica again
// (pg_rewind, or a fresh pg_basebackup when the rewind fails), and freezing a server with
// SIGSTOP (the postmaster and all its children, so the checks' sessions hang too).
'use strict';
const { appendFileSync, rmSync } = require('node:fs');
const path = require('node:path');
const { PgCluster } = require('../../dist/harness/cluster');
const { findPgBinDir } = require('../../dist/harness/binaries');
const { childPids, readPostmasterPid, runPg, runPgSync } = require('../../dist/harness/run');
const { lastLines, readFrom, writeOwnedByPostgres } = require('../../dist/harness/cluster-files');
const { sleep } = require('./failover-procs');

const SETTINGS = {
  // Every acknowledged commit is flushed on one replica: the promoted one (the replica that
  // received the most WAL) therefore has every acknowledged write.
  synchronous_standby_names: 'ANY 1 (pg1, pg2, pg3)',
  synchronous_commit: 'on',
  // pg_rewind needs hint-bit changes in the WAL (or data checksums).
  wal_log_hints: 'on',
  full_page_writes: 'on',
  wal_keep_size: '256MB',
  max_connections: '300',
  log_line_prefix: '%n [%p] ',
  // The reload fault adds a second backend for a replica at 127.0.0.2 (same server, new name).
  listen_addresses: '127.0.0.1,127.0.0.2',
};

class SoakCluster {
  /** @param {{ log?: (line: string) => void, replicas?: number }} opts */
  static async create({ log } = {}) {
    const cluster = await PgCluster.create({ replicas: 2, settings: SETTINGS });
    // Unix sockets out of the data directory (the harness puts them there), where pg_rewind
    // would try to copy the source's socket file ("could not open file .s.PGSQL.…") and fail.
    // postgresql.auto.conf beats the harness's include; replicas restart first.
    const sockets = path.join(cluster.baseDir, 'sockets');
    await runPg('mkdir', ['-p', sockets]);
    for (const node of [...cluster.replicas, cluster.primary]) {
      await cluster.query(node, `ALTER SYSTEM SET unix_socket_directories = '${sockets}'`);
      await cluster.stop(node, 'fast');
      await cluster.start(node);
    }
    return new SoakCluster(cluster, log ?? (() => {}));
  }

  constructor(cluster, log) {
    this.cluster = cluster;
    this.nodes = cluster.nodes;
    this.binDir = findPgBinDir();
    this.log = log;
    /** The node the soak made primary last (the harness's own `primary` never changes). */
    this.primary = cluster.nodes[0];
    /** Promotions the soak saw complete: { timeline, at } (epoch ms, when it was confirmed). */
    this.promotions = [{ timeline: 1, at: 0 }];
  }

  replicas() {
    return this.nodes.filter((n) => n !== this.primary);
  }

  query(node, sql, params) {
    return this.cluster.query(node, sql, params);
  }

  async timelineOf(node) {
    const [row] = await this.query(node, `SELECT ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int AS tl`);
    return row.tl;
  }

  /** The replica with the highest received (flushed) WAL position: it has every synchronous commit. */
  async bestReplica(candidates = this.replicas()) {
    let best;
    for (const node of candidates) {
      try {
        const [row] = await this.query(node, `SELECT coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0'::pg_lsn AS lsn`);
        const lsn = BigInt(row.lsn);
        if (best === undefined || lsn > best.lsn) best = { node, lsn };
      } catch {
        // not reachable (stopped, frozen): not a candidate
      }
    }
    if (best === undefined) throw new Error('no replica reachable to promote');
    return best.node;
  }

  /** pg_ctl promote; remembers the new timeline and the moment the promotion was confirmed. */
  async promote(node) {
    await this.cluster.promote(node);
    await this.noteNewPrimary(node);
  }

  /** After a promotion (ours or pgwarden's switchover): the new primary and its timeline. */
  async noteNewPrimary(node) {
    const timeline = await this.timelineOf(node);
    this.primary = node;
    this.promotions.push({ timeline, at: Date.now(), node: node.name });
  }

  conninfo(primary, replica) {
    return `host=127.0.0.1 port=${primary.port} user=postgres application_name=${replica.name}`;
  }

  /** A running replica follows `primary` from now on (primary_conninfo reloads without a restart). */
  async repoint(replica, primary = this.primary) {
    await this.query(replica, `ALTER SYSTEM SET primary_conninfo = '${this.conninfo(primary, replica)}'`);
    await this.query(replica, 'SELECT pg_reload_conf()');
  }

  /** The replicas that stream from the primary right now (pg_stat_replication, state streaming). */
  async streaming() {
    const rows = await this.query(this.primary, `SELECT application_name AS name FROM pg_stat_replication WHERE state = 'streaming'`);
    return rows.map((r) => r.name);
  }

  /**
   * `node` (stopped, killed or still a fenced primary) becomes a replica of the current primary:
   * stop it, pg_rewind it onto the primary's timeline, or when that fails copy it afresh with
   * pg_basebackup; start it in standby mode. Returns 'rewind' or 'basebackup'.
   */
  async rejoin(node) {
    await this.cluster.stop(node, 'fast').catch(() => this.cluster.stop(node, 'immediate'));
    const source = `host=127.0.0.1 port=${this.primary.port} user=postgres dbname=postgres`;
    let how = 'rewind';
    try {
      // A just-promoted primary writes its new timeline into its control file only at the next
      // checkpoint; before that pg_rewind finds both on the same timeline, rewinds nothing, and
      // the old primary then cannot follow ("new timeline forked off … before current recovery point").
      await this.query(this.primary, 'CHECKPOINT');
      await runPg(path.join(this.binDir, 'pg_rewind'), ['-D', node.dataDir, '--source-server', source, '--no-sync'], { cwd: this.cluster.baseDir, timeoutMs: 60_000 });
      // pg_rewind copied the primary's configuration files; ours go last and win.
      appendFileSync(path.join(node.dataDir, 'postgresql.auto.conf'), `primary_conninfo = '${this.conninfo(this.primary, node)}'\n`);
      writeOwnedByPostgres(path.join(node.dataDir, 'standby.signal'), '');
    } catch (err) {
      how = 'basebackup';
      this.log(`${node.name}: pg_rewind failed (${String(err.message).split('\n').filter((l) => /error|fatal/i.test(l)).join(' ').slice(0, 400)}); fresh base backup`);
      rmSync(node.dataDir, { recursive: true, force: true });
      await runPg(path.join(this.binDir, 'pg_basebackup'), ['-D', node.dataDir, '-d', this.conninfo(this.primary, node), '-R', '-X', 'stream', '-c', 'fast', '--no-sync'], {
        cwd: this.cluster.baseDir,
        timeoutMs: 120_000,
      });
    }
    // pg_rewind and pg_basebackup may leave the primary's own standby files (none) or
    // postmaster.opts; the harness rewrites the node's port file when it starts it.
    rmSync(path.join(node.dataDir, 'postmaster.pid'), { force: true });
    await this.cluster.start(node);
    return how;
  }

  /** SIGSTOP (or SIGCONT) the postmaster and every process it started. Returns the pids signalled. */
  signalAll(node, signal) {
    const pid = readPostmasterPid(node.dataDir);
    if (pid === undefined) return [];
    const pids = [pid, ...childPids(pid)];
    for (const p of pids) {
      try {
        process.kill(p, signal);
      } catch {
        // exited meanwhile
      }
    }
    return pids;
  }

  /** Until `names` all stream from the primary; after `rejoinAfterMs` a replica still missing is rejoined. */
  async waitStreaming(names, { timeoutMs = 90_000, rejoinAfterMs = 15_000 } = {}) {
    const started = Date.now();
    const rejoined = new Set();
    for (;;) {
      const streaming = await this.streaming().catch(() => []);
      const missing = names.filter((n) => !streaming.includes(n));
      if (missing.length === 0) return;
      if (Date.now() - started > timeoutMs) throw new Error(`replicas ${missing.join(', ')} do not stream from ${this.primary.name} after ${timeoutMs} ms`);
      if (Date.now() - started > rejoinAfterMs) {
        for (const name of missing) {
          if (rejoined.has(name)) continue;
          rejoined.add(name);
          const tail = lastLines(readFrom(path.join(this.cluster.baseDir, `${name}.log`), 0), 6).replace(/\n/g, ' | ');
          this.log(`${name}: not streaming from ${this.primary.name} after ${rejoinAfterMs} ms; rejoining it. Its log: ${tail.slice(-700)}`);
          this.lateRejoins = (this.lateRejoins ?? 0) + 1;
          await this.rejoin(this.nodes.find((n) => n.name === name));
        }
      }
      await sleep(200);
    }
  }

  destroy() {
    return this.cluster.destroy();
  }
}

/** A server with a `standby.signal` and no upstream: in recovery for good, never fed, never faulted. */
async function frozenStandbyFrom(cluster, { name, port, maxConnections, baseDir }) {
  const binDir = findPgBinDir();
  const dataDir = path.join(baseDir, name);
  const source = `host=127.0.0.1 port=${cluster.primary.port} user=postgres`;
  await runPg(path.join(binDir, 'pg_basebackup'), ['-D', dataDir, '-d', source, '-X', 'stream', '-c', 'fast', '--no-sync'], { cwd: baseDir, timeoutMs: 120_000 });
  writeOwnedByPostgres(
    path.join(dataDir, 'pgwarden.node.conf'),
    `port = ${port}\nunix_socket_directories = '${dataDir}'\ncluster_name = '${name}'\nmax_connections = ${maxConnections}\nshared_buffers = '16MB'\n` +
      // No upstream: nothing streams in, and nothing waits for this server.
      `primary_conninfo = ''\nsynchronous_standby_names = ''\n`,
  );
  writeOwnedByPostgres(path.join(dataDir, 'standby.signal'), '');
  rmSync(path.join(dataDir, 'postgresql.auto.conf'), { force: true });
  writeOwnedByPostgres(path.join(dataDir, 'postgresql.auto.conf'), '');
  const logFile = path.join(baseDir, `${name}.log`);
  await runPg(path.join(binDir, 'pg_ctl'), ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '120'], { cwd: baseDir, timeoutMs: 180_000 });
  return {
    name,
    port,
    dataDir,
    logFile,
    stop: () => runPg(path.join(binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '60'], { cwd: baseDir }).catch(() => {}),
    stopSync: () => runPgSync(path.join(binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '10']),
  };
}

module.exports = { SoakCluster, SETTINGS, frozenStandbyFrom };
