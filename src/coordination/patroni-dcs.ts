// Patroni's keys in its DCS (etcd v3), read through the same store as coordination
// (etcd-store.ts: deadlines on every call, a prefix read, a watch that nudges on any change).
// Under `<namespace>/<scope>/`: `leader` holds the leader's member name, `members/<name>` each
// member's JSON (conn_url), and `failover` names a leader or a candidate from the moment a
// switchover or failover is requested (`patronictl switchover`, POST /switchover) until Patroni
// has done or dropped it (then it deletes the key or empties it to `{}`).
// That key is the earliest sign of a switchover: Patroni's leader checkpoints and stops with a
// fast shutdown right after it, and nothing in its REST API shows it before the stop.
import type { PatroniConfig } from '../config/types';
import { EtcdStore } from './etcd-store';
import type { StoreSnapshot } from './store';

/** The `failover` key: who asked Patroni to move the leader, to whom, and when. */
export interface PatroniFailoverKey {
  /** The leader named in the request (a switchover names it; a failover may not). */
  readonly leader?: string;
  /** The candidate (Patroni's `member`). */
  readonly candidate?: string;
  /** A scheduled switchover's time (epoch ms); absent: now. */
  readonly scheduledAt?: number;
}

/** What pgwarden reads from Patroni's DCS at one revision. */
export interface PatroniDcsView {
  /** The member holding the leader key; absent between a release and the next acquire. */
  readonly leader?: string;
  readonly failover?: PatroniFailoverKey;
  /** Member name → where its PostgreSQL listens (from conn_url), to map members to backends. */
  readonly members: ReadonlyMap<string, { readonly host: string; readonly port: number }>;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Patroni's Failover.from_node: JSON `{leader, member, scheduled_at}`, or the old `leader:member` text. */
export function parseFailoverKey(value: string): PatroniFailoverKey | undefined {
  const json = parseJson(value);
  if (typeof json === 'object' && json !== null && !Array.isArray(json)) {
    const o = json as Record<string, unknown>;
    const leader = typeof o.leader === 'string' && o.leader !== '' ? o.leader : undefined;
    const candidate = typeof o.member === 'string' && o.member !== '' ? o.member : undefined;
    const at = typeof o.scheduled_at === 'string' && o.scheduled_at !== '' ? Date.parse(o.scheduled_at) : NaN;
    return { ...(leader && { leader }), ...(candidate && { candidate }), ...(Number.isFinite(at) && { scheduledAt: at }) };
  }
  if (value.trim() === '' || json !== undefined) return {};
  const [leader, candidate] = value.split(':').map((s) => s.trim());
  return { ...(leader && { leader }), ...(candidate && { candidate }) };
}

/** `postgres://user@host:port/db` → host and port (5432 when absent). */
function connAddress(connUrl: unknown): { host: string; port: number } | undefined {
  if (typeof connUrl !== 'string') return undefined;
  try {
    const u = new URL(connUrl);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    return host === '' ? undefined : { host, port: u.port === '' ? 5432 : Number(u.port) };
  } catch {
    return undefined;
  }
}

/** The view from a prefix read (keys relative to `<namespace>/<scope>/`). */
export function dcsView(snapshot: StoreSnapshot): PatroniDcsView {
  const members = new Map<string, { host: string; port: number }>();
  for (const [key, stored] of snapshot.keys) {
    if (!key.startsWith('members/')) continue;
    const json = parseJson(stored.value) as { conn_url?: unknown } | undefined;
    const address = connAddress(json?.conn_url);
    if (address) members.set(key.slice('members/'.length), address);
  }
  const leader = snapshot.keys.get('leader')?.value.trim();
  const failover = snapshot.keys.get('failover');
  // Patroni ends a switchover by writing `{}` rather than deleting the key; like Patroni's own
  // Failover (its __len__), a key naming neither a leader nor a candidate is no request.
  const request = failover === undefined ? undefined : parseFailoverKey(failover.value);
  const parsed = request?.leader !== undefined || request?.candidate !== undefined ? request : undefined;
  return { ...(leader && { leader }), ...(parsed && { failover: parsed }), members };
}

/** Reads and watches one Patroni cluster's keys. */
export class PatroniDcs {
  private readonly store: EtcdStore;

  constructor(dcs: NonNullable<PatroniConfig['dcs']>) {
    this.store = new EtcdStore({ ...dcs.etcd, prefix: `${dcs.namespace}/${dcs.scope}` });
  }

  async read(): Promise<PatroniDcsView> {
    return dcsView(await this.store.read());
  }

  /** `onChange` after any change under the cluster's keys and after the watch reconnects. Returns the stop. */
  watch(onChange: () => void): () => void {
    return this.store.watch(onChange);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
