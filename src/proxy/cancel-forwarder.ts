// Delivers a client's CancelRequest. A key this proxy saw in a session's BackendKeyData goes to
// the one server that issued it. An unknown key (TLS passthrough hides BackendKeyData; a session
// of another instance; a guess) goes to every backend the listener can route to — a wrong server
// ignores a key that is not its own — but at a bounded rate: a client flooding CancelRequests
// with made-up keys must not make pgwarden open connections to every server for each of them.
// With coordination, an unknown key that carries another member's tag (cancel-tag.ts) goes to
// that member's listener instead, under the same budget: it issued the key and knows its server.
// Only a key whose tag is another member's is forwarded, so a forwarded request that reaches a
// member without the key (its session ended) is fanned out there, never sent on again.
import type { Clock } from '../clock';
import { cancelKey, cancelRequest } from '../protocol/cancel';
import { NO_TAG, tagOf } from './cancel-tag';
import type { CancelRegistry, CancelTarget } from './cancel-registry';

/**
 * A token bucket: `ratePerSecond` fan-outs a second on average, `burst` at once. Time comes from
 * the clock, so tests can freeze it.
 */
export class FanoutBudget {
  private tokens: number;
  private at: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.tokens = burst;
    this.at = clock.now();
  }

  /** Takes one fan-out if the budget allows it now. */
  take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.ratePerSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface CancelDeps {
  readonly cancels: CancelRegistry;
  /** Every backend this listener can route to (the fan-out of an unknown key). */
  cancelTargets(): CancelTarget[];
  /** Delivers the 16 bytes to one server; never rejects. */
  sendCancel(host: string, port: number, packet: Buffer): Promise<boolean>;
  readonly fanout: FanoutBudget;
  /** With coordination: this member's tag and where the other members take this listener's cancels. */
  readonly peers?: ListenerPeers;
}

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface ListenerPeers {
  /** The tag in every key this member issues. */
  readonly ownTag: number;
  /** The live members other than this one whose tag is `tag`, at their address for this listener. */
  addressesFor(tag: number): readonly PeerAddress[];
}

/** The same for every listener of this instance (coordination provides it; wiring binds a listener's name). */
export interface CancelPeers {
  readonly ownTag: number;
  addressesFor(tag: number, listener: string): readonly PeerAddress[];
}

/** A tag shared by more members than this is a misconfiguration, not a reason to open more connections. */
const MAX_FORWARDS = 4;

export type CancelOutcome = 'exact' | 'forwarded' | 'fanned-out' | 'dropped';

/** Forward one CancelRequest; resolves once every server it went to has taken it (or failed). */
export async function forwardCancel(processId: number, secretKey: number, deps: CancelDeps): Promise<CancelOutcome> {
  const packet = cancelRequest(processId, secretKey);
  const known = deps.cancels.get(cancelKey(processId, secretKey));
  if (known) {
    // A moved session's client still holds its first server's key: the current server gets its own.
    const exact = known.serverKey ? cancelRequest(known.serverKey.processId, known.serverKey.secretKey) : packet;
    await deps.sendCancel(known.host, known.port, exact);
    return 'exact';
  }
  const peers = peerTargets(processId, deps.peers);
  if (!deps.fanout.take()) return 'dropped';
  if (peers.length > 0) {
    await Promise.all(peers.map((p) => deps.sendCancel(p.host, p.port, packet)));
    return 'forwarded';
  }
  await Promise.all(deps.cancelTargets().map((t) => deps.sendCancel(t.host, t.port, packet)));
  return 'fanned-out';
}

/** The members to forward an unknown key to: none unless it bears another member's tag. */
export function peerTargets(processId: number, peers: ListenerPeers | undefined): readonly PeerAddress[] {
  if (peers === undefined) return [];
  const tag = tagOf(processId);
  if (tag === NO_TAG || tag === peers.ownTag) return [];
  return peers.addressesFor(tag).slice(0, MAX_FORWARDS);
}
