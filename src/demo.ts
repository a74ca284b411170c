// `pgwarden demo` (what `npm start` runs): a throwaway primary and two streaming replicas from
// the PostgreSQL binaries on this machine, pgwarden in front of them, the psql commands to try,
// and a clean stop on Ctrl-C / SIGTERM that removes every file it made.
import { randomBytes } from 'node:crypto';
import { PgCluster } from './harness/cluster';
import { PgBinariesMissing, findPgBinDir } from './harness/binaries';
import { parseConfig } from './config/load';
import { createLogger } from './logger';
import { App } from './app';

export interface DemoOptions {
  rwPort: number;
  roPort: number;
  adminPort: number;
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const password = randomBytes(12).toString('hex');
  let cluster: PgCluster | undefined;
  let app: App | undefined;
  let stopping = false;
  const cleanup = async () => {
    await app?.stop(2000);
    await cluster?.destroy();
  };
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    say('\nstopping pgwarden and the demo cluster …');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    say('starting a primary and two streaming replicas (initdb, pg_basebackup -R) …');
    cluster = await PgCluster.create({ replicas: 2, checkUser: { name: 'pgwarden', password }, log: (l) => say(`  ${l}`) });
    if (stopping) return finish(cleanup, 0);
    const [pg1, pg2, pg3] = cluster.nodes;
    const yaml = `
listeners:
  - { name: rw, bind: "127.0.0.1:${opts.rwPort}", route: primary }
  - { name: ro, bind: "127.0.0.1:${opts.roPort}", route: replica, balance: roundrobin, fallback: primary }
backends:
  - { name: ${pg1.name}, host: 127.0.0.1, port: ${pg1.port} }
  - { name: ${pg2.name}, host: 127.0.0.1, port: ${pg2.port} }
  - { name: ${pg3.name}, host: 127.0.0.1, port: ${pg3.port} }
health:
  check: postgres
  user: pgwarden
  password_env: PGWARDEN_DEMO_CHECK_PASSWORD
  database: postgres
  max_replica_lag: 16MB
admin:
  bind: "127.0.0.1:${opts.adminPort}"
  token_env: PGWARDEN_DEMO_ADMIN_TOKEN
logging:
  level: info
`;
    const token = randomBytes(12).toString('hex');
    const config = parseConfig(yaml, { ...process.env, PGWARDEN_DEMO_CHECK_PASSWORD: password, PGWARDEN_DEMO_ADMIN_TOKEN: token }, 'demo');
    app = new App(config, createLogger(config.logging.level));
    await app.start();
    say(`
pgwarden demo is running.
  cluster files: ${cluster.baseDir}
  backends:      ${cluster.nodes.map((n) => `${n.name} 127.0.0.1:${n.port}`).join(', ')} (pg1 is the primary)

Try, in another terminal:
  psql "host=127.0.0.1 port=${opts.rwPort} user=postgres dbname=postgres" -c "select inet_server_port(), pg_is_in_recovery()"
  psql "host=127.0.0.1 port=${opts.roPort} user=postgres dbname=postgres" -c "select inet_server_port(), pg_is_in_recovery()"
  pgbench -i -h 127.0.0.1 -p ${opts.rwPort} -U postgres postgres && pgbench -S -T 10 -h 127.0.0.1 -p ${opts.roPort} -U postgres postgres

Live status page and metrics:   http://127.0.0.1:${opts.adminPort}/   http://127.0.0.1:${opts.adminPort}/metrics
Operator verbs (token for this demo: ${token}):
  PGWARDEN_ADMIN_TOKEN=${token} node dist/cli.js drain pg2 --admin 127.0.0.1:${opts.adminPort}
  PGWARDEN_ADMIN_TOKEN=${token} node dist/cli.js status --admin 127.0.0.1:${opts.adminPort}

Stop a replica and watch the read-only port move to the other one:
  ${process.getuid?.() === 0 ? 'runuser -u postgres -- ' : ''}${findPgBinDir()}/pg_ctl stop -D ${pg2.dataDir}

Ctrl-C stops pgwarden and removes the cluster.
`);
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (stopping) {
          clearInterval(check);
          resolve();
        }
      }, 100);
    });
    return finish(cleanup, 0);
  } catch (e) {
    if (e instanceof PgBinariesMissing) {
      say(`pgwarden demo: ${e.message}`);
      await cleanup().catch(() => undefined);
      return 1;
    }
    say(`pgwarden demo failed: ${(e as Error).message}`);
    await cleanup().catch(() => undefined);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function finish(cleanup: () => Promise<void>, code: number): Promise<number> {
  await cleanup();
  process.stderr.write('demo stopped; cluster removed.\n');
  return code;
}
