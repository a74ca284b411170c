// psql run once (the real client), without blocking the event loop: tests run the proxy in
// their own process, so a synchronous spawn would stall it. Resolves with psql's exit code and
// its trimmed output; never rejects (a failed login is a result the tests look at).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { findPgBinDir } from '../../src/harness/binaries';

const PSQL = join(findPgBinDir(), 'psql');

export interface PsqlResult {
  code: number | null;
  out: string;
  err: string;
}

export function psql(conninfo: string, sql: string, env: Record<string, string> = {}): Promise<PsqlResult> {
  return new Promise((resolve) => {
    const child = spawn(PSQL, [conninfo, '-XAtc', sql], { env: { ...process.env, PGCONNECT_TIMEOUT: '10', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('close', (code) => resolve({ code, out: out.trim(), err: err.trim() }));
  });
}
