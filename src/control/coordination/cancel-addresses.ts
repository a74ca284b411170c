// What a member publishes so that the others can send it a CancelRequest for a key it issued
// (auth.mode proxy: the key is pgwarden's, known only to the instance that issued it), and how
// the others read it back. The tag in the key says whose it is (proxy/cancel-tag.ts); the
// address per listener says where that member takes cancels for that listener's sessions.
import type { ListenerConfig } from '../../config/types';
import type { PeerAddress } from '../../proxy/cancel-forwarder';
import type { ClusterView, MemberCancel } from './cluster-keys';

const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * This member's cancel record: each listener at its bind address, or at `advertise` when it
 * binds a wildcard (a listener bound to a wildcard without `advertise` is left out: the others
 * cannot know which address reaches it, and fan its keys out as before).
 */
export function cancelRecord(tag: number, listeners: readonly ListenerConfig[], advertise: string | undefined): MemberCancel {
  const out: Record<string, PeerAddress> = {};
  for (const l of listeners) {
    const host = WILDCARDS.has(l.host) ? advertise : l.host;
    if (host !== undefined) out[l.name] = { host, port: l.port };
  }
  return { tag, listeners: out };
}

/** Live members other than `self` with tag `tag` that published an address for `listener`. */
export function peerAddresses(view: ClusterView | undefined, self: string, tag: number, listener: string): PeerAddress[] {
  const out: PeerAddress[] = [];
  for (const [name, rec] of view?.members ?? []) {
    if (name === self || !isRecord(rec.cancel) || rec.cancel.tag !== tag || !isRecord(rec.cancel.listeners)) continue;
    const a: unknown = (rec.cancel.listeners as Record<string, unknown>)[listener];
    // Written by another pgwarden (maybe another version): used only when well-formed.
    if (isRecord(a) && typeof a.host === 'string' && a.host !== '' && Number.isInteger(a.port) && (a.port as number) > 0 && (a.port as number) < 65536) {
      out.push({ host: a.host, port: a.port as number });
    }
  }
  return out;
}

/** Members other than `self` that publish `tag` too: keys between them are not forwarded. */
export function sharingTag(view: ClusterView, self: string, tag: number): string[] {
  return [...view.members].filter(([name, rec]) => name !== self && isRecord(rec.cancel) && rec.cancel.tag === tag).map(([name]) => name);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}
