// What a cluster needs for auth.mode proxy, as the README tells an operator to set it up: the
// SECURITY DEFINER function that reads a user's stored password, the role that may call it, and
// pg_hba.conf lines that ask chosen users for their passwords over TCP. Shared by the tests and
// the benchmarks (bench/survive, bench/auth-connect), so all of them run the README's own SQL.
import { renderHba } from './cluster-conf';

export const AUTH_ROLE = 'pgwarden_auth';

/** The README's statements, run as a superuser on the primary (replicas get them by replication). */
export function authFunctionSql(authPassword: string): string[] {
  return [
    `CREATE ROLE ${AUTH_ROLE} LOGIN PASSWORD '${authPassword}'`,
    'CREATE SCHEMA pgwarden',
    `CREATE FUNCTION pgwarden.get_auth(p_usename text) RETURNS TABLE(usename name, passwd text)
       LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS
       $$ SELECT rolname, rolpassword FROM pg_authid WHERE rolname = p_usename AND rolcanlogin
            AND (rolvaliduntil IS NULL OR rolvaliduntil > now()) $$`,
    'REVOKE ALL ON FUNCTION pgwarden.get_auth(text) FROM PUBLIC',
    `GRANT USAGE ON SCHEMA pgwarden TO ${AUTH_ROLE}`,
    `GRANT EXECUTE ON FUNCTION pgwarden.get_auth(text) TO ${AUTH_ROLE}`,
  ];
}

/**
 * The harness's pg_hba.conf with `passwords` (user → method) and the auth role asked for their
 * passwords over TCP from 127.0.0.0/8; first match wins, so everyone else stays trusted.
 */
export function passwordHba(checkUser: string | undefined, passwords: Record<string, 'scram-sha-256' | 'md5'>): string {
  const asked = Object.entries({ ...passwords, [AUTH_ROLE]: 'scram-sha-256' }).map(([user, method]) => `host all ${user} 127.0.0.0/8 ${method}`);
  return renderHba(checkUser).replace('host all all 127.0.0.0/8 trust', [...asked, 'host all all 127.0.0.0/8 trust'].join('\n'));
}
