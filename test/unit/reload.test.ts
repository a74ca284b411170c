// reload() and the TLS files (control/reload.ts) on a Reloadable made of the real parts a reload
// touches (topology, timeline, bus, hooks) and no listener or PostgreSQL: the files are read
// again on every reload; a renewed certificate at the same path replaces the running one; files
// that cannot be used reject the reload and the running certificate stays; sessions are never
// closed for it. Backends and listeners on reload: test/integration/reload.test.ts.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/types';
import { reload, type Reloadable } from '../../src/control/reload';
import { Timeline } from '../../src/control/timeline';
import { Bus } from '../../src/events';
import type { HealthChecker } from '../../src/health/checker';
import { HookRunner } from '../../src/hooks/runner';
import { createLogger } from '../../src/logger';
import { loadTlsFiles } from '../../src/net/tls-credentials';
import type { Session } from '../../src/proxy/session';
import { Topology } from '../../src/routing/topology';
import { StartupSlots } from '../../src/routing/startup-slots';
import { makeTlsFiles, opensslMissing } from '../helpers/tls-files';

const BASE = `listeners:
  - { name: rw, bind: "127.0.0.1:6432", route: primary }
backends:
  - { name: pg1, host: 127.0.0.1, port: 5432 }
`;

/** The running proxy as reload() sees it, with a session that must survive every reload here. */
function fakeApp(config: Config) {
  const log = createLogger('silent');
  const bus = new Bus();
  const closed: string[] = [];
  const session = { backendName: 'pg1', closeAtBoundary: (_s: string, m: string) => closed.push(m), close: (_s: string, m: string) => closed.push(m) } as unknown as Session;
  const restarted: string[] = [];
  const app: Reloadable = {
    config,
    hooks: new HookRunner(config.hooks, { log, bus }),
    topology: new Topology(config.backends, config.health),
    startups: new StartupSlots(() => 64),
    timeline: new Timeline(bus, log),
    bus,
    log,
    listeners: [],
    retired: new Set(),
    checkers: new Map([['pg1', { stop: () => undefined } as unknown as HealthChecker]]),
    tlsFiles: loadTlsFiles(config.tls),
    sessions: () => [session],
    endpoint: () => undefined,
    clusterHooksHere: () => true,
    makeListener: () => {
      throw new Error('no listener changes in these tests');
    },
    makeChecker: (b) => {
      restarted.push(b.name);
      return { start: () => undefined, stop: () => undefined } as unknown as HealthChecker;
    },
    logListenerReady: () => undefined,
  };
  return { app, closed, restarted };
}

const missing = opensslMissing();
if (missing !== undefined) {
  t.plan(0, missing);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-reload-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { f } = makeTlsFiles(dir);
  // The files the config names; the tests put other contents at these paths, as a renewal does.
  const cert = f('live.pem');
  const key = f('live.key');
  const serverCa = f('live-server-ca.pem');
  const renew = (certFrom: string, keyFrom: string) => {
    copyFileSync(f(certFrom), cert);
    copyFileSync(f(keyFrom), key);
  };
  renew('server.pem', 'server.key');
  copyFileSync(f('ca.pem'), serverCa);
  let text = `${BASE}tls: { mode: terminate, cert_file: ${cert}, key_file: ${key}, server: verify-full, server_ca_file: ${serverCa} }\n`;
  const loadConfig = () => parseConfig(text, {}, 'pgwarden.yaml');

  t.test('a bad new certificate is refused; the running one stays and sessions stay', async (t) => {
    const { app, closed, restarted } = fakeApp(loadConfig());
    const running = app.tlsFiles;
    t.match(running.credentials?.certificate.subject, /CN=localhost/);

    writeFileSync(cert, 'half a certificate\n');
    let r = await reload(app, loadConfig);
    t.equal(r.ok, false);
    t.match(r.error, /^cannot use the TLS files the configuration names \(1 problem\):\n {2}tls\.cert_file: .*live\.pem holds no PEM certificate/);
    t.equal(app.tlsFiles, running, 'the running certificate stays');
    t.match(app.timeline.recent().at(-1), { level: 'error', event: 'config.reload', message: 'reload rejected: the running config stays' });

    renew('server.pem', 'client.key');
    r = await reload(app, loadConfig);
    t.match(r, { ok: false, error: /tls\.key_file: the key in .*live\.key does not belong to the certificate in .*live\.pem/ });
    t.equal(app.tlsFiles, running);

    const before = app.config;
    text = text.replace('port: 5432', 'port: 5433');
    r = await reload(app, loadConfig);
    t.equal(r.ok, false, 'with a config change beside it');
    t.equal(app.config, before, 'the config does not change either');
    t.equal(app.topology.get('pg1')?.config.port, 5432);
    text = text.replace('port: 5433', 'port: 5432');

    t.same(closed, [], 'no session was closed');
    t.same(restarted, [], 'no checker was restarted');
  });

  t.test('a renewed certificate at the same path replaces the running one', async (t) => {
    renew('server.pem', 'server.key');
    const { app, closed } = fakeApp(loadConfig());
    const running = app.tlsFiles.credentials;
    t.same(await reload(app, loadConfig), { ok: true, changes: [] }, 'the same files: nothing to say');
    t.not(app.tlsFiles.credentials, running, 'read again all the same');

    renew('name-only.pem', 'name-only.key');
    const r = await reload(app, loadConfig);
    t.equal(r.ok, true);
    t.match(r.changes, [/^tls certificate replaced \(CN=localhost, valid until .+\)$/]);
    t.equal(app.tlsFiles.credentials?.certificate.fingerprint256, loadTlsFiles(loadConfig().tls).credentials?.certificate.fingerprint256);
    t.not(app.tlsFiles.credentials?.certificate.fingerprint256, running?.certificate.fingerprint256);
    t.same(closed, [], 'sessions keep the TLS they have');
  });

  t.test('a new CA for the servers restarts the checks, which use it', async (t) => {
    renew('server.pem', 'server.key');
    const { app, restarted } = fakeApp(loadConfig());
    copyFileSync(f('other-ca.pem'), serverCa);
    const r = await reload(app, loadConfig);
    t.same(r, { ok: true, changes: ['tls server_ca_file changed (health checks reconnect)'] });
    t.same(restarted, ['pg1']);
    copyFileSync(f('ca.pem'), serverCa);

    const passthrough = `${BASE}tls: { server: require }\n`;
    const r2 = await reload(app, () => parseConfig(passthrough, {}));
    t.same(r2, { ok: true, changes: ['tls settings changed'] });
    t.equal(app.tlsFiles.credentials, undefined, 'no certificate outside terminate');
    t.equal(app.tlsFiles.serverLeg.mode, 'require');
    t.same(restarted, ['pg1', 'pg1'], 'tls.server changed: the checks reconnect');
  });
}
