// pgbench from the PostgreSQL binaries the harness uses, run as a child process.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { findPgBinDir } from '../../src/harness/binaries';

function pgbenchPath(): string {
  try {
    const p = join(findPgBinDir(), 'pgbench');
    accessSync(p, constants.X_OK);
    return p;
  } catch {
    return 'pgbench'; // PATH
  }
}

/** Runs pgbench against the proxy without blocking the event loop (the proxy runs in this process). */
export function pgbench(port: number, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(pgbenchPath(), [...args, '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'], {
      env: { ...process.env, PGPASSWORD: '', PGCONNECT_TIMEOUT: '60' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

