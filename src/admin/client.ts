// The CLI verbs that talk to a running pgwarden through its admin API:
//   pgwarden status | drain NAME | maint NAME | ready NAME | switchover --to NAME | reload
// Exit codes: 0 done, 1 the API said no or could not be reached, 2 bad usage.
import http from 'node:http';
import type { Writable } from 'node:stream';
import type { BackendStatus, StatusSnapshot } from '../routing/status-snapshot';
import { formatSize } from '../config/units';
import { formatCluster } from './cluster-text';

export type AdminVerb = 'status' | 'drain' | 'maint' | 'ready' | 'switchover' | 'reload';

export interface AdminTarget {
  host: string;
  port: number;
  token?: string;
}

interface Reply {
  status: number;
  body: unknown;
}

/** A switchover waits for transactions to finish and a replica to catch up: allow minutes. */
const TIMEOUT_MS: Record<AdminVerb, number> = { status: 10_000, drain: 30_000, maint: 30_000, ready: 30_000, reload: 60_000, switchover: 600_000 };

export async function runAdminVerb(
  verb: AdminVerb,
  args: { backend?: string; to?: string },
  admin: AdminTarget,
  out: Writable = process.stdout,
  err: Writable = process.stderr,
): Promise<number> {
  const request = plan(verb, args);
  if (typeof request === 'string') {
    err.write(`pgwarden ${verb}: ${request}\n`);
    return 2;
  }
  const base = `http://${urlHost(admin.host)}:${admin.port}`;
  let reply: Reply;
  try {
    reply = await call(admin, request.method, request.path, request.body, TIMEOUT_MS[verb]);
  } catch (e) {
    err.write(`pgwarden ${verb}: cannot reach the pgwarden admin API at ${base}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  const body = (typeof reply.body === 'object' && reply.body !== null ? reply.body : {}) as Record<string, unknown>;
  if (reply.status >= 400) {
    const msg = typeof body.error === 'string' ? body.error : typeof reply.body === 'string' ? reply.body.trim() : 'request failed';
    err.write(`pgwarden ${verb}: ${base}${request.path} answered ${reply.status}: ${msg}${body.code ? ` (${String(body.code)})` : ''}\n`);
    return 1;
  }
  out.write(verb === 'status' ? formatStatus(body as unknown as StatusSnapshot) : essentials(verb, body));
  return 0;
}

function plan(verb: AdminVerb, args: { backend?: string; to?: string }): { method: string; path: string; body?: string } | string {
  switch (verb) {
    case 'status':
      return { method: 'GET', path: '/status' };
    case 'drain':
    case 'maint':
    case 'ready':
      if (!args.backend) return `which backend? usage: pgwarden ${verb} NAME`;
      return { method: 'POST', path: `/backends/${encodeURIComponent(args.backend)}/${verb}` };
    case 'switchover':
      if (!args.to) return 'which backend should become the primary? usage: pgwarden switchover --to NAME';
      return { method: 'POST', path: '/switchover', body: JSON.stringify({ to: args.to }) };
    case 'reload':
      return { method: 'POST', path: '/reload' };
    default:
      return `unknown verb ${String(verb)}`;
  }
}

function call(admin: AdminTarget, method: string, path: string, body: string | undefined, timeoutMs: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Accept: 'application/json', Connection: 'close' };
    if (admin.token) headers.Authorization = `Bearer ${admin.token}`;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    const req = http.request({ host: connectHost(admin.host), port: admin.port, method, path, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON: keep the text */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

function essentials(verb: AdminVerb, b: Record<string, unknown>): string {
  switch (verb) {
    case 'drain':
    case 'maint':
    case 'ready':
      return `${String(b.backend)} is now ${String(b.adminState)}\n`;
    case 'switchover': {
      const closed = b.closedIdle !== undefined ? `; sessions closed: ${String(b.closedIdle)} idle, ${String(b.closedInTransaction ?? 0)} in a transaction` : '';
      const took = b.durationMs !== undefined ? ` in ${String(b.durationMs)} ms` : '';
      return `switchover done: ${String(b.from ?? '(none)')} → ${String(b.to)}${took}${closed}\n`;
    }
    case 'reload': {
      const changes = Array.isArray(b.changes) ? (b.changes as unknown[]).map(String) : [];
      return changes.length ? `configuration reloaded:\n${changes.map((c) => `  - ${c}\n`).join('')}` : 'configuration reloaded: no changes\n';
    }
    default:
      return `${JSON.stringify(b)}\n`;
  }
}

/** The readable `pgwarden status`: the primary, the cluster (when coordinating), backends and listeners as aligned tables. */
export function formatStatus(s: StatusSnapshot, now = Date.now()): string {
  const backendRows = s.backends.map((b) => [
    b.name,
    `${b.host}:${b.port}`,
    backendState(b),
    b.adminState,
    b.role ?? '-',
    lag(b),
    // Startups in flight (proxy.max_concurrent_startups) beside the sessions, only while there are some.
    b.startupsInFlight > 0 ? `${b.sessions} +${b.startupsInFlight} starting` : String(b.sessions),
    lastCheck(b, now),
  ]);
  const listenerRows = s.listeners.map((l) => [
    l.name,
    l.bind,
    l.route,
    l.balance,
    String(l.sessions),
    String(l.queued),
    l.hasCandidate ? 'yes' : `no: ${l.reason ?? 'no candidate'}`,
  ]);
  return [
    `primary: ${s.primary ?? 'NONE (writes are waiting)'}`,
    '',
    ...(s.coordination ? [...formatCluster(s.coordination), ''] : []),
    table(['BACKEND', 'ADDRESS', 'STATE', 'ADMIN', 'ROLE', 'LAG', 'SESSIONS', 'LAST CHECK'], backendRows),
    '',
    table(['LISTENER', 'BIND', 'ROUTE', 'BALANCE', 'SESSIONS', 'QUEUED', 'CANDIDATE'], listenerRows),
    '',
  ].join('\n');
}

function backendState(b: BackendStatus): string {
  const flags = [b.transitional ? 'changing' : '', b.fenced ? 'FENCED' : '', b.backup ? 'backup' : ''].filter(Boolean);
  return flags.length ? `${b.state} (${flags.join(', ')})` : b.state;
}

function lag(b: BackendStatus): string {
  if (b.role !== 'replica') return '-';
  const parts = [b.lagBytes !== undefined ? formatSize(b.lagBytes) : '?', b.lagSeconds !== undefined ? `${b.lagSeconds.toFixed(1)}s` : '?'];
  return parts.join(' / ');
}

function lastCheck(b: BackendStatus, now: number): string {
  const c = b.lastCheck;
  if (!c) return 'not yet';
  const ago = Math.max(0, Math.round((now - Date.parse(c.at)) / 1000));
  const what = c.ok ? `ok ${Math.round(c.durationMs)}ms` : `${c.layer ?? 'failed'}${c.message ? `: ${c.message}` : ''}`;
  return `${what} (${ago}s ago)`;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** A server bound to every address is reached on loopback. */
function connectHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

function urlHost(host: string): string {
  const h = connectHost(host);
  return h.includes(':') ? `[${h}]` : h;
}
