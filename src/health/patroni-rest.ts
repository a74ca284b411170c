// What Patroni says of one member: GET /patroni on its REST API ("REST API" in Patroni's
// documentation), parsed into the few fields pgwarden uses, and the one decision made from
// them: is Patroni taking this server away (demoting, stopping, restarting) so that no new
// session should go there? The request never throws and never decides that a server is down:
// an unanswered request is an answer too (reachable false), and SQL checks stay the judge of
// health. Pure apart from patroniGet.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

const BODY_LIMIT = 256 * 1024;

/** Patroni's `state` values during which its PostgreSQL is going away or not yet back. */
export const PATRONI_LEAVING_STATES: readonly string[] = ['stopping', 'stopped', 'restarting', 'starting'];

/** One member as its GET /patroni shows it. */
export interface PatroniMember {
  /** false: no usable answer (the other fields are absent); `error` says why. */
  readonly reachable: boolean;
  readonly error?: string;
  /**
   * Patroni's name for the member: patroni.name where Patroni reports it (3.1 and later), else
   * the member whose conn_url in the DCS is this server (filled in by the watch).
   */
  readonly name?: string;
  /** patroni.scope and patroni.version. */
  readonly scope?: string;
  readonly version?: string;
  /** master / primary, replica, demoted, standby_leader, uninitialized … */
  readonly role?: string;
  /** running, streaming, starting, stopping, stopped, restarting, crashed … */
  readonly state?: string;
  readonly timeline?: number;
  readonly pendingRestart: boolean;
  /** tags.nofailover: Patroni never promotes it; neither does pgwarden. */
  readonly noFailover: boolean;
  /** scheduled_restart.schedule, as epoch ms. */
  readonly scheduledRestartAt?: number;
  /** The cluster is in maintenance mode (`patronictl pause`): Patroni changes nothing. */
  readonly pause: boolean;
  readonly syncStandby: boolean;
}

export interface PatroniTarget {
  readonly host: string;
  readonly port: number;
  readonly scheme: 'http' | 'https';
  readonly timeoutMs: number;
  /** https: the CA (PEM) of the REST API's certificate; absent: the system's CAs. */
  readonly ca?: Buffer;
}

export function unreachable(error: string): PatroniMember {
  return { reachable: false, error, pendingRestart: false, noFailover: false, pause: false, syncStandby: false };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Patroni writes tags as YAML gave them: `nofailover: true`, but also "true" or 1. */
function truthy(v: unknown): boolean {
  return v === true || v === 1 || (typeof v === 'string' && ['true', 'yes', 'on', '1'].includes(v.toLowerCase()));
}

/** The body of GET /patroni (status 200 or 503: Patroni answers both with the same document). */
export function parsePatroni(body: string): PatroniMember {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return unreachable('the answer is not JSON');
  }
  if (!isRecord(json)) return unreachable('the answer is not a JSON object');
  const patroni = isRecord(json.patroni) ? json.patroni : {};
  const tags = isRecord(json.tags) ? json.tags : {};
  const scheduled = isRecord(json.scheduled_restart) ? Date.parse(String(json.scheduled_restart.schedule ?? '')) : NaN;
  return {
    reachable: true,
    ...(typeof patroni.name === 'string' && { name: patroni.name }),
    ...(typeof patroni.scope === 'string' && { scope: patroni.scope }),
    ...(typeof patroni.version === 'string' && { version: patroni.version }),
    ...(typeof json.role === 'string' && { role: json.role }),
    ...(typeof json.state === 'string' && { state: json.state }),
    ...(typeof json.timeline === 'number' && { timeline: json.timeline }),
    pendingRestart: json.pending_restart === true,
    noFailover: truthy(tags.nofailover),
    ...(Number.isFinite(scheduled) && { scheduledRestartAt: scheduled }),
    pause: json.pause === true,
    syncStandby: json.sync_standby === true,
  };
}

/**
 * Why no new session should go to this member now, or undefined. Patroni is taking it away:
 * demoting it (role demoted), stopping, restarting or starting its PostgreSQL, or a scheduled
 * restart is due. An unreachable REST API is no reason: the SQL checks decide then.
 */
export function patroniDrainReason(m: PatroniMember, now: number): string | undefined {
  if (!m.reachable) return undefined;
  if (m.role === 'demoted') return 'Patroni is demoting it';
  if (m.state !== undefined && PATRONI_LEAVING_STATES.includes(m.state)) return `Patroni reports it ${m.state}`;
  if (m.scheduledRestartAt !== undefined && m.scheduledRestartAt <= now) return 'its scheduled restart is due';
  return undefined;
}

/** One GET /patroni. Settles within target.timeoutMs (plus the time to read a small body); never rejects. */
export function patroniGet(target: PatroniTarget): Promise<PatroniMember> {
  const where = `${target.scheme}://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}/patroni`;
  return new Promise((resolve) => {
    let settled = false;
    const done = (m: PatroniMember): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(m);
    };
    const onResponse = (res: IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > BODY_LIMIT) res.destroy(new Error(`answer longer than ${BODY_LIMIT} bytes`));
      });
      res.on('error', (err) => done(unreachable(`${where}: ${err.message}`)));
      res.on('end', () => {
        // 503 is how Patroni says "not running / not the primary" on most endpoints; /patroni
        // answers it with the same document while PostgreSQL is not running.
        if (res.statusCode !== 200 && res.statusCode !== 503) done(unreachable(`${where} answered HTTP ${res.statusCode}`));
        else {
          const m = parsePatroni(body);
          done(m.reachable ? m : unreachable(`${where}: ${m.error}`));
        }
      });
    };
    // agent: false, so that no keep-alive socket outlives the request and holds the event loop.
    const options = { host: target.host, port: target.port, path: '/patroni', method: 'GET', agent: false as const, headers: { accept: 'application/json' } };
    const req = target.scheme === 'https' ? httpsRequest({ ...options, ...(target.ca && { ca: target.ca }) }, onResponse) : httpRequest(options, onResponse);
    const timer = setTimeout(() => {
      done(unreachable(`${where}: no answer within ${target.timeoutMs} ms`));
      req.destroy();
    }, target.timeoutMs);
    timer.unref();
    req.on('error', (err) => done(unreachable(`${where}: ${err.message}`)));
    req.end();
  });
}
