// The admin HTTP API (node:http): status, metrics, health-source probes and the operator's
// state changes. Reads are open; a state change needs `Authorization: Bearer <admin.token>`,
// and without a configured token state changes are refused outright (fail closed). It listens
// on loopback by default: the token is sent in clear text, so put TLS in front of it before
// exposing it beyond the host.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../logger';
import type { AdminController } from './controller';
import type { Metrics } from '../metrics/metrics';
import { renderStatusPage } from './status-page';
import { fail, ROUTES, type LagLimit, type RouteContext, type RouteResponse } from './routes';
import { AdminHttpError } from '../errors';

export interface AdminServerOptions {
  host: string;
  port: number;
  token?: string;
  controller: AdminController;
  metrics: Metrics;
  log: Logger;
  /** HTML for GET /; default: the live status page (status-page.ts). */
  statusPage?: () => string;
  /** Default lag limit of GET /replica (pass config.health.maxReplicaLag); none when absent. */
  maxReplicaLag?: LagLimit;
}

/** Request bodies are small JSON documents; anything bigger is a mistake or an attack. */
export const MAX_BODY_BYTES = 16 * 1024;
const BODY_TIMEOUT_MS = 10_000;

export class AdminServer {
  private readonly server: http.Server;
  private readonly ctx: RouteContext;
  private closing?: Promise<void>;

  constructor(private readonly opts: AdminServerOptions) {
    this.ctx = {
      controller: opts.controller,
      metrics: opts.metrics,
      statusPage: opts.statusPage ?? renderStatusPage,
      maxReplicaLag: opts.maxReplicaLag,
    };
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.headersTimeout = BODY_TIMEOUT_MS;
    this.server.requestTimeout = BODY_TIMEOUT_MS * 3;
    this.server.keepAliveTimeout = 5_000;
    this.server.on('clientError', (_e, socket) => socket.destroy());
    // An error of the listening server (an accept that failed: EMFILE, ENFILE once Node's spare
    // descriptor is gone) must not become an uncaught exception; it comes once per connection,
    // so at most one line per 5 s. Bind errors go to listen().
    let loggedAt = -Infinity;
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.server.listening || Date.now() - loggedAt < 5_000) return;
      loggedAt = Date.now();
      opts.log.error({ event: 'admin.accept_error', code: err.code, err: err.message }, `admin API cannot accept connections: ${err.message}`);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.opts.host, port: this.opts.port }, () => {
        this.server.off('error', reject);
        const a = this.address();
        const auth = this.opts.token ? 'state changes need the admin token' : 'state changes disabled: no admin.token';
        this.opts.log.info({ event: 'admin.ready', address: `${a.address}:${a.port}` }, `admin API on http://${hostForUrl(a.address)}:${a.port} (${auth})`);
        resolve();
      });
    });
  }

  address(): AddressInfo {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('admin API is not listening');
    return a;
  }

  /** Stop listening and drop every connection, idle keep-alive ones included. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    res.on('error', () => undefined);
    req.on('error', () => undefined);
    // Concatenated, not resolved: `//x` must stay a path, not become a host.
    const url = new URL(`http://admin.invalid${(req.url ?? '/').startsWith('/') ? req.url : '/'}`);
    const method = req.method ?? 'GET';
    let out: RouteResponse;
    let mutating = false;
    try {
      const matches = ROUTES.map((r) => ({ r, m: r.pattern.exec(url.pathname) })).filter((x) => x.m !== null);
      if (matches.length === 0) throw new AdminHttpError('PGW_ADMIN_NOT_FOUND', `no route ${url.pathname}`);
      const readMethod = method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
      const hit = matches.find((x) => x.r.method === method || (x.r.method === 'GET' && readMethod));
      if (hit === undefined) {
        res.setHeader('Allow', matches[0].r.method === 'GET' ? 'GET, HEAD, OPTIONS' : 'POST');
        throw new AdminHttpError('PGW_ADMIN_METHOD', `${method} is not allowed on ${url.pathname}; use ${matches[0].r.method}`);
      }
      mutating = hit.r.mutating;
      if (mutating) this.authorize(req);
      const body = method === 'POST' ? await readBody(req) : '';
      const param = hit.m?.[1] !== undefined ? safeDecode(hit.m[1]) : undefined;
      out = await hit.r.handle(this.ctx, { query: url.searchParams, param, body });
    } catch (e) {
      if (e instanceof AdminHttpError) out = fail(e.code, e.message);
      else {
        this.opts.log.error({ event: 'admin.error', method, path: url.pathname, err: e instanceof Error ? e.message : String(e) }, 'admin request failed');
        out = fail('PGW_ADMIN_INTERNAL', e instanceof Error ? e.message : String(e));
      }
    }
    if (mutating) {
      // Who asked for what, and the answer; never the Authorization header.
      const level = out.status < 400 ? 'info' : 'warn';
      this.opts.log[level](
        { event: 'admin.request', method, path: url.pathname, remote: req.socket.remoteAddress, status: out.status, ...summary(out) },
        `admin ${method} ${url.pathname} → ${out.status}`,
      );
    }
    send(req, res, method, out);
  }

  /** 401 without credentials, 403 with wrong ones or when no token is configured. */
  private authorize(req: http.IncomingMessage): void {
    const token = this.opts.token;
    if (!token) {
      throw new AdminHttpError('PGW_ADMIN_DISABLED', 'state changes are disabled: set admin.token or admin.token_env in the configuration to enable them');
    }
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header.trim());
    if (m === null) {
      throw new AdminHttpError('PGW_ADMIN_UNAUTHORIZED', 'this request changes state: send the header "Authorization: Bearer <admin token>"');
    }
    if (!sameSecret(m[1], token)) throw new AdminHttpError('PGW_ADMIN_FORBIDDEN', 'wrong admin token');
  }
}

/** Constant-time: compare digests, so neither the content nor the length leaks through timing. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function readBody(req: http.IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      reject(new AdminHttpError('PGW_ADMIN_BODY_TIMEOUT', `request body not received within ${BODY_TIMEOUT_MS} ms`));
      req.destroy();
    }, BODY_TIMEOUT_MS);
    timer.unref();
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        clearTimeout(timer);
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge());
      } else chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('close', () => clearTimeout(timer));
  });
}

function tooLarge(): AdminHttpError {
  return new AdminHttpError('PGW_ADMIN_BODY_TOO_LARGE', `request body over ${MAX_BODY_BYTES} bytes`);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function send(req: http.IncomingMessage, res: http.ServerResponse, method: string, out: RouteResponse): void {
  if (res.headersSent || res.destroyed) return;
  const isText = typeof out.body === 'string';
  const text = isText ? (out.body as string) : `${JSON.stringify(out.body, null, 2)}\n`;
  res.statusCode = out.status;
  res.setHeader('Content-Type', out.contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8'));
  res.setHeader('Cache-Control', 'no-store');
  // A body we refused (too big, too slow, unauthenticated) may still be arriving: close the
  // connection rather than read and discard it on a kept-alive socket.
  if (!req.complete) res.setHeader('Connection', 'close');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(method === 'HEAD' ? undefined : text);
}

/** The essentials of a state-change answer for the log line. */
function summary(out: RouteResponse): Record<string, unknown> {
  if (typeof out.body !== 'object' || out.body === null) return {};
  const b = out.body as Record<string, unknown>;
  const keep = ['code', 'error', 'backend', 'adminState', 'from', 'to', 'durationMs', 'changes'];
  return Object.fromEntries(keep.filter((k) => b[k] !== undefined).map((k) => [k, b[k]]));
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
