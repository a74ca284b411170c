// Starts pgwarden in-process in front of a test cluster, on free ports, with fast health checks
// and an in-memory log, and tears it down with the test.
import net from 'node:net';
import { Client } from 'pg';
import type { Test } from 'tap';
import { App, type AppOptions } from '../../src/app';
import { parseConfig } from '../../src/config/load';
import { createLogger } from '../../src/logger';
import { freePort } from '../../src/harness/ports';
import type { PgCluster, PgNode } from '../../src/harness/cluster';

export const CHECK_USER = { name: 'pgwarden', password: 'check-secret-9f2c' };

export interface ProxyOptions {
  /** Extra top-level YAML sections appended to the generated config (not health/failover: use those options). */
  health?: string;
  failover?: string;
  listeners?: (rw: number, ro: number) => string;
  backends?: (nodes: readonly PgNode[]) => string;
  extra?: string;
  /** reload() re-reads the generated config (default: there is no file to reload). */
  reloadable?: boolean;
  /** Passed to the App (e.g. a faster history sampling for the status page charts). */
  app?: AppOptions;
}

export interface RunningProxy {
  app: App;
  rwPort: number;
  roPort: number;
  logs: Record<string, unknown>[];
  rawLog: () => string;
}

/** `cluster`: anything with nodes (a PgCluster, a PatroniCluster); they become the backends unless `opts.backends` says otherwise. */
export async function startProxy(t: Test, cluster: Pick<PgCluster, 'nodes'>, opts: ProxyOptions = {}): Promise<RunningProxy> {
  const rwPort = await freePort();
  const roPort = await freePort();
  const listeners =
    opts.listeners?.(rwPort, roPort) ??
    `  - { name: rw, bind: "127.0.0.1:${rwPort}", route: primary }
  - { name: ro, bind: "127.0.0.1:${roPort}", route: replica }`;
  const backends = opts.backends?.(cluster.nodes) ?? cluster.nodes.map((n) => `  - { name: ${n.name}, host: 127.0.0.1, port: ${n.port} }`).join('\n');
  const yaml = `
listeners:
${listeners}
backends:
${backends}
health:
${opts.health ?? healthConfig()}
failover:
${opts.failover ?? `  queue_timeout: 20s
  queue_size: 100`}
${opts.extra ?? ''}
`;
  const config = parseConfig(yaml, { ...process.env, TEST_CHECK_PASSWORD: CHECK_USER.password }, 'test');
  const lines: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const log = createLogger('debug', {
    write(s: string) {
      lines.push(s);
      try {
        logs.push(JSON.parse(s));
      } catch {
        /* not JSON: kept in rawLog */
      }
    },
  });
  // reloadable: reload() reads the same text again (the files it names, certificates, may have changed).
  const loadConfig = opts.reloadable ? () => parseConfig(yaml, { ...process.env, TEST_CHECK_PASSWORD: CHECK_USER.password }, 'test') : undefined;
  const app = new App(config, log, { ...(loadConfig ? { loadConfig } : {}), ...opts.app });
  await app.start();
  t.teardown(() => app.stop(0));
  return { app, rwPort, roPort, logs, rawLog: () => lines.join('') };
}

/** Poll `cond` until it is true or `timeoutMs` passes (then fail with `what`). */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Wait until the proxy's topology has `name` in state `state`. */
export function waitForBackend(p: RunningProxy, name: string, state: 'up' | 'down', timeoutMs?: number): Promise<void> {
  return waitFor(`${name} ${state}`, () => p.app.topology.get(name)?.state === state, timeoutMs);
}

export async function connect(port: number, extra: Record<string, unknown> = {}): Promise<Client> {
  const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 30_000, ...extra });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Which server answers through `port`: its listening port and whether it is in recovery. */
export async function whoAnswers(port: number, extra: Record<string, unknown> = {}): Promise<{ port: number; inRecovery: boolean }> {
  const c = await connect(port, extra);
  try {
    const r = await c.query('select inet_server_port() as port, pg_is_in_recovery() as rec');
    return { port: Number(r.rows[0].port), inRecovery: r.rows[0].rec };
  } finally {
    await c.end();
  }
}

/** Send raw bytes to the proxy and collect everything it answers until it closes. */
export function rawExchange(port: number, bytes: Buffer, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(bytes));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('proxy did not close the connection'));
    }, timeoutMs);
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Decode the fields of an ErrorResponse at the start of `buf` (protocol "ErrorResponse"). */
export function errorFields(buf: Buffer): Record<string, string> {
  if (buf[0] !== 0x45) throw new Error(`not an ErrorResponse: ${buf.subarray(0, 16).toString('hex')}`);
  const len = buf.readInt32BE(1);
  const out: Record<string, string> = {};
  let i = 5;
  while (i < 1 + len && buf[i] !== 0) {
    const type = String.fromCharCode(buf[i]);
    const end = buf.indexOf(0, i + 1);
    out[type] = buf.subarray(i + 1, end).toString('utf8');
    i = end + 1;
  }
  return out;
}

/**
 * The tests' `health:` body: fast checks (interval 300ms, fast 100ms, rise/fall 2) as `user`
 * (the check user by default), plus `extra` lines (e.g. `  max_replica_lag: 1MB`).
 */
export function healthConfig(extra = '', user = CHECK_USER.name): string {
  return `  check: postgres
  user: ${user}
  password_env: TEST_CHECK_PASSWORD
  interval: 300ms
  fast_interval: 100ms
  down_interval: 300ms
  timeout: 1s
  rise: 2
  fall: 2${extra ? `\n${extra}` : ''}`;
}
