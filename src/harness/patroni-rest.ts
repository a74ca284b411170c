// Part of the Patroni harness for the tests (see patroni.ts); not the proxy.
// One GET to a node's Patroni REST API ("REST API" in Patroni's documentation): /primary
// answers 200 only on the leader whose PostgreSQL runs as a primary, /replica 200 on a running
// replica, /cluster the members as the DCS sees them. Never throws: a node that does not answer
// is an answer too (status 0), and the note says why for the message of a wait that timed out.
import { request } from 'node:http';

const REQUEST_TIMEOUT_MS = 2000;
const BODY_LIMIT = 64 * 1024;

export interface RestAnswer {
  /** HTTP status, or 0 when there was no answer. */
  readonly status: number;
  /** The body parsed as JSON; undefined when it is not JSON or there was none. */
  readonly json: unknown;
  readonly note: string;
}

export function restGet(port: number, path: string): Promise<RestAnswer> {
  const where = `http://127.0.0.1:${port}${path}`;
  return new Promise((resolve) => {
    // agent: false, so that no keep-alive socket outlives the request and holds the event loop.
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body = (body + chunk).slice(0, BODY_LIMIT)));
      res.on('error', (err) => resolve({ status: 0, json: undefined, note: `${where}: ${err.message}` }));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: parse(body), note: `${where} answered ${res.statusCode} ${body.trim().slice(0, 300)}` }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve({ status: 0, json: undefined, note: `${where}: ${err.message}` }));
    req.end();
  });
}

/** A member as GET /cluster lists it (the fields the harness reads). */
export interface ClusterMember {
  readonly name: string;
  /** leader, sync_standby, replica (standby_leader in a standby cluster). */
  readonly role: string;
  /** running, streaming, starting, stopped, crashed … */
  readonly state: string;
  readonly timeline?: number;
}

/** The members of GET /cluster, or undefined when the answer is not one. */
export function clusterMembers(answer: RestAnswer): ClusterMember[] | undefined {
  const members = (answer.json as { members?: unknown } | undefined)?.members;
  if (answer.status !== 200 || !Array.isArray(members)) return undefined;
  return members.filter((m): m is ClusterMember => typeof m?.name === 'string' && typeof m?.role === 'string' && typeof m?.state === 'string');
}

function parse(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}
