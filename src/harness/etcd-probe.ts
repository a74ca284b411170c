// Part of the etcd harness for the tests (see etcd.ts); not the proxy.
// One look at an etcd member through its client URL: GET /health, which etcd 3.4 answers
// {"health":"true"} only when the member has a leader and can serve a read through it, so a
// member that answers true belongs to a cluster with quorum. Without a quorum /health does not
// answer at all (it waits for a read through a leader), so "is its listener up" asks /version,
// which a member answers on its own.
import { request } from 'node:http';

const REQUEST_TIMEOUT_MS = 1000;
const BODY_LIMIT = 1000;

export interface EtcdProbe {
  /** The member answered HTTP at all: its client listener is up. */
  readonly answered: boolean;
  /** It answered {"health":"true"}. */
  readonly healthy: boolean;
  /** What it answered, or why it did not: for the error message of a wait that timed out. */
  readonly note: string;
}

export function probeHealth(address: string, port: number, path: '/health' | '/version' = '/health'): Promise<EtcdProbe> {
  const where = `http://${address}:${port}${path}`;
  return new Promise((resolve) => {
    // agent: false, so that no keep-alive socket outlives the probe and holds the event loop.
    const req = request({ host: address, port, path, agent: false, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body = (body + chunk).slice(0, BODY_LIMIT)));
      res.on('error', (err) => resolve({ answered: true, healthy: false, note: `${where}: ${err.message}` }));
      res.on('end', () => {
        const healthy = res.statusCode === 200 && healthField(body) === 'true';
        resolve({ answered: true, healthy, note: `${where} answered ${res.statusCode} ${body.trim()}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve({ answered: false, healthy: false, note: `${where}: ${err.message}` }));
    req.end();
  });
}

function healthField(body: string): unknown {
  try {
    return (JSON.parse(body) as { health?: unknown }).health;
  } catch {
    return undefined;
  }
}
