// A real cluster set up for auth.mode proxy (issue 19): pg_hba.conf asks a SCRAM user and an md5
// user for their passwords over TCP, the README's SECURITY DEFINER function and its auth user
// exist, and a role without a password is trusted. For proxy-auth and sessions-that-survive tests.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import type { Test } from 'tap';
import type { PgCluster } from '../../src/harness/cluster';
import { renderHba } from '../../src/harness/cluster-conf';
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
  const primary = cluster.primary;
  // The README's function, the auth user, and one role per stored-password kind.
  for (const sql of [
    `CREATE ROLE pgwarden_auth LOGIN PASSWORD '${AUTH_PASSWORD}'`,
    'CREATE SCHEMA pgwarden',
    `CREATE FUNCTION pgwarden.get_auth(p_usename text) RETURNS TABLE(usename name, passwd text)
       LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS
       $$ SELECT rolname, rolpassword FROM pg_authid WHERE rolname = p_usename AND rolcanlogin
            AND (rolvaliduntil IS NULL OR rolvaliduntil > now()) $$`,
    'REVOKE ALL ON FUNCTION pgwarden.get_auth(text) FROM PUBLIC',
    'GRANT USAGE ON SCHEMA pgwarden TO pgwarden_auth',
    'GRANT EXECUTE ON FUNCTION pgwarden.get_auth(text) TO pgwarden_auth',
    `SET password_encryption = 'scram-sha-256'`,
    `CREATE ROLE ${SCRAM.user} LOGIN PASSWORD '${SCRAM.password}'`,
    `SET password_encryption = 'md5'`,
    `CREATE ROLE ${MD5.user} LOGIN PASSWORD '${MD5.password}'`,
    'CREATE ROLE app_nopw LOGIN',
  ]) {
    await cluster.query(primary, sql);
  }
  // First match wins: these users need their password over TCP, everyone else is trusted (the harness's lines).
  const hba = renderHba(CHECK_USER.name).replace(
    'host all all 127.0.0.0/8 trust',
    [`host all ${SCRAM.user} 127.0.0.0/8 scram-sha-256`, `host all ${MD5.user} 127.0.0.0/8 md5`, 'host all pgwarden_auth 127.0.0.0/8 scram-sha-256', 'host all all 127.0.0.0/8 trust'].join('\n'),
  );
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
  return cluster;
}

export const AUTH_YAML = 'auth:\n  mode: proxy\n  user: pgwarden_auth\n  password_env: TEST_AUTH_PASSWORD\n';

