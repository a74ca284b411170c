// The TLS phase of bench/run: pgbench with sslmode=require clients against the primary itself
// (ssl on, with the harness's self-signed certificate), pgwarden terminating TLS and PgBouncer
// with `client_tls_sslmode = require` — both with the certificate made here, both plain text to
// the server — interleaved as in the throughput phase. And that certificate.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');
const { startPgbouncer, startPgwarden } = require('./perf-targets');
const { TLS_WORKLOADS, interleavedRounds } = require('./perf-pgbench');
const { tlsSessionInfo } = require('./perf-idle');
const { summarise } = require('./perf-report');

/**
 * The target of issue 14: with TLS to the clients, pgwarden's select-only TPS at least PgBouncer's
 * in the same run. Not the connection rate: PgBouncer in session mode keeps its server connections
 * across clients, so its -C rate is a TLS handshake alone where pgwarden's also opens a backend.
 */
const TLS_TARGET = { against: 'pgbouncer', ratio: 1.0, workloads: ['select-c8', 'select-c64'] };

/**
 * A self-signed certificate for 127.0.0.1 and localhost in `dir` (tls.crt, tls.key), or
 * {missing} without openssl. EC P-256 like the harness's server.crt, so pgwarden, PgBouncer and
 * PostgreSQL sign the same kind of handshake. The clients use sslmode=require: nothing is verified.
 */
function makeCertificate(dir) {
  if (spawnSync('openssl', ['version'], { stdio: 'ignore' }).status !== 0) return { missing: 'openssl is not installed (apt-get install openssl)' };
  const certFile = path.join(dir, 'tls.crt');
  const keyFile = path.join(dir, 'tls.key');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}

/**
 * The TLS phase. `cluster`'s primary must have ssl on; `cert` is makeCertificate's. Targets go
 * into `running` (stopped by the caller on every exit path too). Returns {tls, errors}: `tls` is
 * the section of the results JSON (targets with what they negotiated, skipped, runs, summary,
 * the target's verdicts).
 */
async function measureTls({ dir, cluster, pgbench, settings, cert, running, log }) {
  const tls = { clients: 'sslmode=require (PGSSLMODE)', serverLeg: 'plain text', targets: { direct: {} }, skipped: [], runs: [], summary: {}, target: { ...TLS_TARGET, verdicts: {} } };
  const errors = [];
  if (cert.missing) {
    tls.skipped.push({ target: 'all', reason: cert.missing });
    log(`tls: SKIPPED — ${cert.missing}`);
    return { tls, errors };
  }
  const targets = { direct: { port: cluster.primary.port } };
  const backends = [{ name: 'pg1', port: cluster.primary.port }, { name: 'pg2', port: cluster.replicas[0].port }];
  for (const start of [() => startPgwarden(dir, backends, { tls: cert }), () => startPgbouncer(dir, cluster.primary.port, { poolSize: 80, tls: cert })]) {
    const t = await start();
    if (t.missing) {
      tls.skipped.push({ target: t.name, reason: t.missing });
      tls.targets[t.name] = { missing: t.missing };
      log(`tls ${t.name}: SKIPPED — ${t.missing}`);
      continue;
    }
    running.push(t);
    targets[t.name] = t;
    tls.targets[t.name] = { version: t.version };
  }
  // What each target negotiates with a Node.js client, so that the table says what was compared.
  for (const [name, t] of Object.entries(targets)) {
    try {
      Object.assign((tls.targets[name] ??= {}), await tlsSessionInfo(t.port));
      log(`tls ${name} on 127.0.0.1:${t.port}: ${tls.targets[name].protocol} ${tls.targets[name].cipher}${t.server ? ` (pid ${t.server.pid})` : ''}`);
    } catch (e) {
      errors.push({ phase: 'tls', target: name, message: `a TLS session to ${name} (127.0.0.1:${t.port}) failed: ${e.message}` });
      log(`tls ${name}: ERROR ${e.message}`);
    }
  }
  const { runs, errors: failed } = await interleavedRounds(pgbench, targets, TLS_WORKLOADS, settings, { sslmode: 'require', phase: 'tls', prefix: 'tls ', log });
  tls.runs = runs;
  errors.push(...failed);
  tls.summary = summarise(runs, TLS_WORKLOADS, Object.keys(targets), { vsDirect: 'direct', vsPgbouncer: 'pgbouncer' });
  for (const w of TLS_WORKLOADS.filter((x) => TLS_TARGET.workloads.includes(x.id))) {
    const ratio = tls.summary[w.id]?.pgwarden?.vsPgbouncer ?? null;
    tls.target.verdicts[w.id] = { ratio, met: ratio === null ? null : ratio >= TLS_TARGET.ratio };
    log(`tls target: ${w.label}, pgwarden ≥ ${TLS_TARGET.ratio.toFixed(2)}× PgBouncer: ${ratio === null ? 'not measured' : `${ratio.toFixed(2)}× — ${ratio >= TLS_TARGET.ratio ? 'MET' : 'NOT MET'}`}`);
  }
  return { tls, errors };
}

module.exports = { TLS_TARGET, makeCertificate, measureTls };
