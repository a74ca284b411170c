// What one listener's sessions get from the running proxy (ListenerContext): its router, the
// settings read through the proxy so that a reload applies to the next session, the
// certificates of the last good load, session reporting, and the cancel targets.
import { realClock } from '../clock';
import type { Config, ListenerConfig } from '../config/types';
import type { Bus } from '../events';
import type { Logger } from '../logger';
import type { TlsFiles } from '../net/tls-credentials';
import { FanoutBudget, type CancelPeers, type ListenerPeers } from '../proxy/cancel-forwarder';
import { sendCancel, type CancelRegistry, type CancelTarget } from '../proxy/cancel-registry';
import type { ListenerContext } from '../proxy/listener-context';
import { Router } from '../routing/router';
import type { Topology } from '../routing/topology';
import type { StartupSlots } from '../routing/startup-slots';
import { sessionReporting } from './session-reporting';
import type { DescriptorShortage } from './descriptor-shortage';
import type { AuthLookup } from '../proxy/auth-lookup';
import type { SurviveKit } from '../survive/survive-kit';

export interface WiredProxy {
  readonly topology: Topology;
  readonly bus: Bus;
  readonly log: Logger;
  readonly cancels: CancelRegistry;
  readonly startups: StartupSlots;
  /** Failures for lack of file descriptors, logged once per burst. */
  readonly descriptors: DescriptorShortage;
  /** auth.mode proxy: auth.query and its cache, shared by every listener. */
  readonly authLookup: AuthLookup;
  readonly authMockKey: Buffer;
  /** The running config and TLS files (a reload replaces them). */
  config(): Config;
  tlsFiles(): TlsFiles;
  poke(backend: string, reason: string): void;
  /** sessions.survive's tracker and logins (used only while the config says survive: on). */
  readonly survive: SurviveKit;
  sessionOpened(): void;
  sessionClosed(): void;
  /** With coordination: the other members' cancel addresses (a key of theirs is forwarded there). */
  readonly cancelPeers?: CancelPeers;
}

export function listenerContext(l: ListenerConfig, p: WiredProxy): ListenerContext {
  const router = new Router(
    l,
    p.topology,
    () => p.config().failover,
    undefined,
    (waitMs, outcome) => p.bus.emit('session.dequeued', { listener: l.name, waitMs, outcome }),
    realClock,
    p.startups,
  );
  const rate = p.config().proxy.unknownCancelRate;
  return {
    listener: l,
    router,
    startups: p.startups,
    topology: p.topology,
    cancels: p.cancels,
    get tls() {
      return p.config().tls;
    },
    get proxy() {
      return p.config().proxy;
    },
    get failover() {
      return p.config().failover;
    },
    get health() {
      return p.config().health;
    },
    get auth() {
      return p.config().auth;
    },
    lookupSecret: (user) => p.authLookup.lookup(user),
    authMockKey: p.authMockKey,
    clock: realClock,
    log: p.log,
    fanout: new FanoutBudget(rate, rate, realClock),
    ...(p.cancelPeers && { peers: listenerPeers(p.cancelPeers, l.name) }),
    ...sessionReporting(l.name, { log: p.log, bus: p.bus, poke: p.poke, sessionOpened: p.sessionOpened, sessionClosed: p.sessionClosed }),
    survive: () => (p.config().sessions.survive === 'on' ? p.survive : undefined),
    clientTlsOptions: () => p.tlsFiles().credentials?.options(),
    clientCertificateError: (socket) => p.tlsFiles().credentials?.clientCertificateError(socket),
    serverTlsOptions: (host) => {
      const leg = p.tlsFiles().serverLeg;
      const connect = leg.options(host);
      return connect && { connect, fallbackToPlain: leg.mode === 'prefer' };
    },
    onOutOfDescriptors: (where, errno) => p.descriptors.hit(where, errno),
    cancelTargets: () => cancelTargets(l, p.topology),
    sendCancel: (host, port, packet) => sendCancel(host, port, packet, p.config().proxy.connectTimeout),
  };
}

/**
 * Every backend this listener can route to: servers that are not down and whose role fits
 * the route (plus the primary when a replica route falls back to it). A session may outlive
 * its backend's candidacy (lag, weight), so candidacy itself is not the test.
 */
function cancelTargets(l: ListenerConfig, topology: Topology): CancelTarget[] {
  const fits = (role?: string) => l.route === 'any' || role === undefined || role === l.route || (l.fallback === 'primary' && role === 'primary');
  return topology
    .backends()
    .filter((v) => v.state !== 'down' && fits(v.role))
    .map((v) => ({ backend: v.name, host: v.config.host, port: v.config.port }));
}

function listenerPeers(peers: CancelPeers, listener: string): ListenerPeers {
  return { ownTag: peers.ownTag, addressesFor: (tag) => peers.addressesFor(tag, listener) };
}
