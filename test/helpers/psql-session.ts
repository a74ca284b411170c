// One long-lived psql session (the real client, reading statements from a pipe), for tests that
// need a psql connection to outlive something: each query() writes a statement and a marker
// (\echo) and resolves with the lines psql printed before the marker; stderr is kept (psql
// prints a server's FATAL and "server closed the connection unexpectedly" there). stdout is
// line-buffered through stdbuf so each answer arrives as it is printed.
import { spawn } from 'node:child_process';
import type { Test } from 'tap';

export interface PsqlSession {
  query(sql: string, timeoutMs?: number): Promise<string[]>;
  /** Everything psql wrote on stderr so far. */
  stderr(): string;
}

export function psqlSession(t: Test, port: number): PsqlSession {
  const child = spawn('stdbuf', ['-oL', 'psql', '-X', '-A', '-t', '-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PGCONNECT_TIMEOUT: '30' },
  });
  t.teardown(() => {
    child.stdin.end();
    child.kill();
  });
  let out = '';
  let err = '';
  let marker = 0;
  const waiting: (() => void)[] = [];
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString('utf8');
    for (const w of waiting.splice(0)) w();
  });
  child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
  child.stdin.on('error', () => undefined);
  return {
    stderr: () => err,
    query(sql, timeoutMs = 30_000) {
      const tag = `__done_${++marker}__`;
      child.stdin.write(`${sql};\n\\echo ${tag}\n`);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`psql did not answer ${JSON.stringify(sql)} within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
        const check = () => {
          const at = out.indexOf(`${tag}\n`);
          if (at < 0) return void waiting.push(check);
          clearTimeout(timer);
          const lines = out.slice(0, at).split('\n').filter((l) => l !== '');
          out = out.slice(at + tag.length + 1);
          resolve(lines);
        };
        check();
      });
    },
  };
}
