// What each admin API route answers, without HTTP plumbing: a handler takes the parsed request
// and returns a status, a content type and a body. server.ts owns sockets, auth and bodies.
//
// Health-source routes follow Patroni's REST API so HAProxy `option httpchk GET /primary`, a
// Kubernetes probe or a load balancer can use pgwarden's view of the cluster:
//   /primary → 200 when some backend is the primary, 503 otherwise;
//   /replica → 200 when some backend is an up replica taking traffic within the lag limit.
import type { AdminController } from './controller';
import type { BackendStatus, StatusSnapshot } from '../routing/status-snapshot';
import { ConfigValueError, UnknownBackendError, httpStatusOf, type AdminHttpCode } from '../errors';
import { parseReplicaLag } from '../config/units';
import type { Metrics } from '../metrics/metrics';
import { resourceReport } from './debug-resources';

export interface LagLimit {
  readonly bytes?: number;
  readonly ms?: number;
}

export interface RouteContext {
  readonly controller: AdminController;
  readonly metrics: Metrics;
  readonly statusPage: () => string;
  /** Default limit for /replica without `?lag=` (health.max_replica_lag); none when absent. */
  readonly maxReplicaLag?: LagLimit;
}

export interface RouteRequest {
  readonly query: URLSearchParams;
  /** Path parameter (the backend name of /backends/NAME/...). */
  readonly param?: string;
  /** Raw request body (POST only), at most the server's body limit. */
  readonly body: string;
}

export interface RouteResponse {
  readonly status: number;
  readonly contentType?: string;
  /** Objects are sent as JSON. */
  readonly body: unknown;
}

export interface Route {
  readonly pattern: RegExp;
  /** GET routes also answer HEAD and OPTIONS (HAProxy's default httpchk method). */
  readonly method: 'GET' | 'POST';
  /** Changes state: needs the bearer token and is logged. */
  readonly mutating: boolean;
  readonly handle: (ctx: RouteContext, req: RouteRequest) => RouteResponse | Promise<RouteResponse>;
}

export const json = (status: number, body: unknown): RouteResponse => ({ status, body });
/** An error answer: the status comes with the code from the catalogue (src/errors.ts). */
export const fail = (code: AdminHttpCode, error: string, extra: Record<string, unknown> = {}): RouteResponse =>
  json(httpStatusOf(code), { error, code, ...extra });

export const ROUTES: readonly Route[] = [
  { pattern: /^\/$/, method: 'GET', mutating: false, handle: (ctx) => ({ status: 200, contentType: 'text/html; charset=utf-8', body: ctx.statusPage() }) },
  { pattern: /^\/healthz$/, method: 'GET', mutating: false, handle: () => json(200, { status: 'ok' }) },
  { pattern: /^\/readyz$/, method: 'GET', mutating: false, handle: readyz },
  { pattern: /^\/status$/, method: 'GET', mutating: false, handle: (ctx) => json(200, ctx.controller.status()) },
  { pattern: /^\/history$/, method: 'GET', mutating: false, handle: (ctx) => json(200, ctx.controller.history()) },
  {
    pattern: /^\/metrics$/,
    method: 'GET',
    mutating: false,
    handle: async (ctx) => ({ status: 200, contentType: ctx.metrics.registry.contentType, body: await ctx.metrics.registry.metrics() }),
  },
  { pattern: /^\/primary$/, method: 'GET', mutating: false, handle: primary },
  { pattern: /^\/replica$/, method: 'GET', mutating: false, handle: replica },
  { pattern: /^\/backends\/([^/]+)\/drain$/, method: 'POST', mutating: true, handle: (ctx, req) => setAdminState(ctx, req, 'drain') },
  { pattern: /^\/backends\/([^/]+)\/maint$/, method: 'POST', mutating: true, handle: (ctx, req) => setAdminState(ctx, req, 'maint') },
  { pattern: /^\/backends\/([^/]+)\/ready$/, method: 'POST', mutating: true, handle: (ctx, req) => setAdminState(ctx, req, 'ready') },
  { pattern: /^\/switchover$/, method: 'POST', mutating: true, handle: switchover },
  { pattern: /^\/reload$/, method: 'POST', mutating: true, handle: reload },
  // A read, but it forces a full collection (a few ms): token required like a state change.
  { pattern: /^\/debug\/resources$/, method: 'GET', mutating: true, handle: (ctx) => json(200, resourceReport(ctx.controller.status())) },
];

function readyz(ctx: RouteContext): RouteResponse {
  const ready = ctx.controller.ready();
  const notReady = ctx.controller
    .status()
    .listeners.filter((l) => !l.hasCandidate)
    .map((l) => ({ listener: l.name, reason: l.reason ?? 'no candidate' }));
  return json(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', listenersWithoutCandidate: notReady });
}

function primary(ctx: RouteContext): RouteResponse {
  const s = ctx.controller.status();
  const p = s.backends.find((b) => b.name === s.primary);
  if (p === undefined || p.state !== 'up') return fail('PGW_NO_PRIMARY', 'no primary: no backend takes writes now');
  return json(200, { name: p.name, host: p.host, port: p.port, role: 'primary' });
}

function replica(ctx: RouteContext, req: RouteRequest): RouteResponse {
  let limit: LagLimit | undefined = ctx.maxReplicaLag;
  const lag = req.query.get('lag');
  if (lag !== null) {
    try {
      // A bare number is bytes, as in Patroni's `?lag=`; otherwise a size (16MB) or a duration (10s).
      limit = /^\d+$/.test(lag.trim()) ? { bytes: Number(lag) } : parseReplicaLag(lag);
    } catch (e) {
      if (e instanceof ConfigValueError) return fail('PGW_ADMIN_BAD_REQUEST', `lag: ${e.message}`);
      throw e;
    }
  }
  const s = ctx.controller.status();
  const ok = s.backends.filter((b) => usableReplica(b) && withinLag(b, limit));
  if (ok.length === 0) {
    return fail('PGW_NO_REPLICA', `no up replica taking traffic${describeLimit(limit)}`, { backends: whyNot(s, limit) });
  }
  return json(200, { replicas: ok.map((b) => ({ name: b.name, host: b.host, port: b.port, lagBytes: b.lagBytes, lagSeconds: b.lagSeconds })) });
}

function usableReplica(b: BackendStatus): boolean {
  return b.state === 'up' && b.role === 'replica' && b.adminState === 'ready' && !b.fenced;
}

/** Same rule as the router's (Topology.withinLag): an unknown lag is not within a limit. */
export function withinLag(b: Pick<BackendStatus, 'lagBytes' | 'lagSeconds'>, limit?: LagLimit): boolean {
  if (limit?.bytes !== undefined && (b.lagBytes === undefined || b.lagBytes > limit.bytes)) return false;
  if (limit?.ms !== undefined && (b.lagSeconds === undefined || b.lagSeconds * 1000 > limit.ms)) return false;
  return true;
}

function describeLimit(limit?: LagLimit): string {
  const parts = [limit?.bytes !== undefined ? `${limit.bytes} bytes` : '', limit?.ms !== undefined ? `${limit.ms} ms` : ''].filter(Boolean);
  return parts.length ? ` within ${parts.join(' and ')} of lag` : '';
}

function whyNot(s: StatusSnapshot, limit?: LagLimit): Record<string, string> {
  const out: Record<string, string> = {};
  for (const b of s.backends) {
    if (b.state !== 'up') out[b.name] = b.state;
    else if (b.role !== 'replica') out[b.name] = b.role ?? 'role unknown';
    else if (b.adminState !== 'ready') out[b.name] = b.adminState;
    else if (b.fenced) out[b.name] = 'fenced';
    else if (!withinLag(b, limit)) out[b.name] = `lagging (${b.lagBytes ?? '?'} bytes, ${b.lagSeconds ?? '?'} s)`;
    else out[b.name] = 'ok';
  }
  return out;
}

function setAdminState(ctx: RouteContext, req: RouteRequest, state: 'drain' | 'maint' | 'ready'): RouteResponse {
  const name = req.param ?? '';
  try {
    ctx.controller.setAdminState(name, state);
  } catch (e) {
    if (e instanceof UnknownBackendError) return fail(e.code, e.message, { backend: name });
    throw e;
  }
  return json(200, { ok: true, backend: name, adminState: state });
}

async function switchover(ctx: RouteContext, req: RouteRequest): Promise<RouteResponse> {
  let to: unknown;
  try {
    to = (JSON.parse(req.body || '{}') as { to?: unknown } | null)?.to;
  } catch {
    return fail('PGW_ADMIN_BAD_REQUEST', 'the body must be JSON like {"to": "pg2"}');
  }
  if (typeof to !== 'string' || to === '') return fail('PGW_ADMIN_BAD_REQUEST', 'missing "to": the backend to promote, like {"to": "pg2"}');
  let result;
  try {
    result = await ctx.controller.switchover(to);
  } catch (e) {
    if (e instanceof UnknownBackendError) return fail(e.code, e.message, { backend: to });
    throw e;
  }
  return result.ok ? json(200, result) : json(httpStatusOf('PGW_SWITCHOVER_FAILED'), { ...result, code: 'PGW_SWITCHOVER_FAILED' });
}

async function reload(ctx: RouteContext): Promise<RouteResponse> {
  const result = await ctx.controller.reload();
  if (!result.ok) return fail('PGW_RELOAD_FAILED', result.error ?? 'reload failed', { ok: false });
  return json(200, result);
}
