// Part of the cluster harness for the demo, tests and benchmarks (see cluster.ts); not the proxy.
// Files of a test cluster: its base directory, files the postgres OS user must own, and the
// tail of a server log for error messages.
import { chmodSync, chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isRoot, postgresUserIds, runPg } from './run';

export function makeBaseDir(requested: string | undefined): string {
  if (requested === undefined) return mkdtempSync(join(tmpdir(), 'pgwarden-cluster-'));
  const dir = resolve(requested);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Makes baseDir private (0700) and, when we are root, the postgres OS user's. Resolves with why
 * that user cannot use it (a parent directory it may not search), or undefined when it can.
 */
export async function giveBaseDirToPostgres(baseDir: string): Promise<string | undefined> {
  chmodSync(baseDir, 0o700);
  if (!isRoot()) return undefined;
  const { uid, gid } = postgresUserIds();
  chownSync(baseDir, uid, gid);
  try {
    await runPg('test', ['-w', baseDir, '-a', '-x', baseDir]);
    return undefined;
  } catch {
    return `the postgres OS user cannot write to ${baseDir}: every parent directory must be searchable by it (choose a baseDir under ${tmpdir()})`;
  }
}

export function writeOwnedByPostgres(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  if (isRoot()) {
    const { uid, gid } = postgresUserIds();
    chownSync(file, uid, gid);
  }
}

export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

export function readFrom(file: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const length = Math.max(0, Math.min(fileSize(file) - offset, 256 * 1024));
    const start = Math.max(offset, fileSize(file) - length);
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, start);
    return buffer.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export function lastLines(text: string, count: number): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-count).join('\n') || '(empty)';
}
