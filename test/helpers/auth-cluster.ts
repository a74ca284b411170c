// A real cluster set up for auth.mode proxy (issue 19): pg_hba.conf asks a SCRAM user and an md5
// user for their passwords over TCP, the README's SECURITY DEFINER function and its auth user
// exist, and a role without a password is trusted. For proxy-auth and sessions-that-survive tests.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import type { Test } from 'tap';
import type { PgCluster } from '../../src/harness/cluster';
import { authFunctionSql, passwordHba } from '../../src/harness/proxy-auth-setup';
import { startCluster } from './cluster';
import { CHECK_USER, waitFor } from './proxy';

export const AUTH_PASSWORD = 'auth-secret-7Qx2';
export const SCRAM = { user: 'app_scram', password: 'scram-pw-Lk3' };
export const MD5 = { user: 'app_md5', password: 'md5-pw-Vb9' };

export async function login(port: number, user: string, password: string, extra: Record<string, unknown> = {}): Promise<Client> {
  const c = new Client({ host: '127.0.0.1', port, user, password, database: 'postgres', connectionTimeoutMillis: 20_000, ...extra });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

export async function loginError(port: number, user: string, password: string): Promise<{ code?: string; message: string }> {
  try {
    const c = await login(port, user, password);
    await c.end();
    return { message: 'logged in' };
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message };
  }
}

/** A cluster whose pg_hba.conf asks these users for their passwords, with the README's function and roles. */
export async function authCluster(t: Test, replicas: number): Promise<PgCluster> {
  const cluster = await startCluster(t, { replicas, checkUser: CHECK_USER });
  await prepareProxyAuth(t, cluster);
  return cluster;
}

/**
 * Sets up a running cluster (started with CHECK_USER, e.g. startCluster3) for auth.mode proxy:
 * the function, the auth user, the roles, and a pg_hba.conf that asks for passwords over
 * 127.0.0.0/8 on every node.
 */
export async function prepareProxyAuth(t: Test, cluster: PgCluster): Promise<void> {
  const primary = cluster.primary;
  const replicas = cluster.nodes.length - 1;
  // The README's function, the auth user, and one role per stored-password kind.
  for (const sql of [
    ...authFunctionSql(AUTH_PASSWORD),
    `SET password_encryption = 'scram-sha-256'`,
    `CREATE ROLE ${SCRAM.user} LOGIN PASSWORD '${SCRAM.password}'`,
    `SET password_encryption = 'md5'`,
    `CREATE ROLE ${MD5.user} LOGIN PASSWORD '${MD5.password}'`,
    'CREATE ROLE app_nopw LOGIN',
  ]) {
    await cluster.query(primary, sql);
  }
  const hba = passwordHba(CHECK_USER.name, { [SCRAM.user]: 'scram-sha-256', [MD5.user]: 'md5' });
  if (replicas > 0) await cluster.waitForReplication();
  for (const node of cluster.nodes) {
    writeFileSync(join(node.dataDir, 'pg_hba.conf'), hba);
    await cluster.query(node, 'SELECT pg_reload_conf()');
    await waitFor(`pg_hba.conf reloaded on ${node.name}`, async () => (await loginError(node.port, SCRAM.user, 'wrong')).code === '28P01');
  }
  process.env.TEST_AUTH_PASSWORD = AUTH_PASSWORD;
  t.teardown(() => {
    delete process.env.TEST_AUTH_PASSWORD;
  });
}

export const AUTH_YAML = 'auth:\n  mode: proxy\n  user: pgwarden_auth\n  password_env: TEST_AUTH_PASSWORD\n';

