// `reload`: re-read the config file and apply what changed without a restart. Unchanged
// backends and their sessions are untouched; a removed backend gets no new sessions and is
// forgotten once its sessions end; a changed listener is rebound (its existing sessions continue
// on the old socket until they end). A config that does not load, or a listener address that
// cannot be bound, changes nothing: the running config stays. The TLS files `tls` names are read
// again every time (a renewed certificate at the same path); files that cannot be used reject the
// reload like a bad config, and the running certificate stays. Sessions keep the TLS they have.
import type { StartupSlots } from '../routing/startup-slots';
import { isDeepStrictEqual } from 'node:util';
import { ConfigError, SqlState } from '../errors';
import type { ReloadResult } from '../admin/controller';
import type { BackendConfig, Config, ListenerConfig } from '../config/types';
import type { HealthChecker } from '../health/checker';
import { HookRunner } from '../hooks/runner';
import type { Listener } from '../proxy/listener';
import { diffConfig } from './config-diff';
import type { ControlContext } from './context';
import { closeSessions } from './drain';
import { loadTlsFiles, type TlsFiles } from '../net/tls-credentials';

/** The running proxy as a reload changes it (App). */
export interface Reloadable extends ControlContext {
  config: Config;
  hooks: HookRunner;
  readonly listeners: Listener[];
  /** Listeners removed by a reload whose sessions have not ended yet. */
  readonly retired: Set<Listener>;
  readonly checkers: Map<string, HealthChecker>;
  /** Startups in flight per server: a raised proxy.max_concurrent_startups lets waiters go now. */
  readonly startups: StartupSlots;
  /** The TLS files of `config.tls`, replaced with it. */
  tlsFiles: TlsFiles;
  makeListener(l: ListenerConfig): Listener;
  makeChecker(b: BackendConfig): HealthChecker;
  logListenerReady(l: Listener): void;
}

export async function reload(app: Reloadable, loadConfig: (() => Config) | undefined): Promise<ReloadResult> {
  if (!loadConfig) return { ok: false, error: 'no config file to reload (pgwarden was started without --config)' };
  let next: Config;
  let tlsFiles: TlsFiles;
  try {
    next = loadConfig();
    tlsFiles = loadTlsFiles(next.tls);
  } catch (e) {
    const error = e instanceof ConfigError ? e.format() : (e as Error).message;
    app.timeline.add('error', 'config.reload', 'reload rejected: the running config stays', { ok: false, error });
    app.bus.emit('config.reload', { ok: false, changes: [], error });
    return { ok: false, error };
  }
  try {
    const changes = await applyConfig(app, next, tlsFiles);
    app.timeline.add('info', 'config.reload', changes.length ? `reloaded: ${changes.join('; ')}` : 'reloaded: no changes', { ok: true, changes });
    app.bus.emit('config.reload', { ok: true, changes });
    return { ok: true, changes };
  } catch (e) {
    const error = (e as Error).message;
    app.timeline.add('error', 'config.reload', `reload failed: ${error}`, { ok: false, error });
    app.bus.emit('config.reload', { ok: false, changes: [], error });
    return { ok: false, error };
  }
}

/** Apply a validated config; returns the summary of what changed. */
async function applyConfig(app: Reloadable, next: Config, tlsFiles: TlsFiles): Promise<string[]> {
  const diff = diffConfig(app.config, next);
  const tlsSummary = tlsFileChanges(isDeepStrictEqual(app.config.tls, next.tls) ? app.tlsFiles : undefined, tlsFiles);
  // Bind new listeners (and changed ones on a new address) first: if an address is taken,
  // nothing has changed yet and the running config stays.
  const fresh: Listener[] = [];
  const rebind = diff.listeners.changed.filter((l) => {
    const old = app.listeners.find((x) => x.name === l.name)!;
    return old.config.host !== l.host || old.config.port !== l.port;
  });
  const prev = app.config;
  const prevTls = app.tlsFiles;
  app.config = next;
  app.tlsFiles = tlsFiles;
  try {
    for (const l of [...diff.listeners.added, ...rebind]) {
      const listener = app.makeListener(l);
      fresh.push(listener);
      await listener.listen();
    }
  } catch (e) {
    app.config = prev;
    app.tlsFiles = prevTls;
    for (const l of fresh) await l.stopAccepting();
    throw e;
  }
  for (const l of diff.listeners.changed) if (!rebind.includes(l)) app.listeners.find((x) => x.name === l.name)!.reconfigure(l);
  for (const l of app.listeners) l.proxySettingsChanged();
  app.startups.roomMade();
  for (const name of [...diff.listeners.removed, ...rebind.map((l) => l.name)]) {
    const i = app.listeners.findIndex((x) => x.name === name);
    if (i < 0) continue;
    const [old] = app.listeners.splice(i, 1);
    void old.stopAccepting();
    // Its sessions continue and close on their own; keep them visible until then.
    if (old.sessions.size > 0) app.retired.add(old);
  }
  for (const l of fresh) {
    app.listeners.push(l);
    app.logListenerReady(l);
  }

  for (const name of diff.backends.removed) {
    app.checkers.get(name)?.stop();
    app.checkers.delete(name);
    app.topology.setAdminState(name, 'drain');
    forgetWhenIdle(app, name);
  }
  for (const b of diff.backends.changed) {
    const before = app.topology.get(b.name)?.config;
    app.topology.replaceConfig(b);
    if (before && (before.host !== b.host || before.port !== b.port)) {
      closeSessions(app.sessions(b.name), 'reload', SqlState.ADMIN_SHUTDOWN, `terminating connection: server ${b.name} moved to ${b.host}:${b.port} (pgwarden config reload)`);
    }
  }
  for (const b of diff.backends.added) app.topology.add(b);
  // New hook lists apply to the next event; runs in progress finish under the old runner.
  if (diff.summary.includes('hooks settings changed')) app.hooks = new HookRunner(next.hooks, { log: app.log, bus: app.bus });
  // Checkers: restart those whose backend changed, all of them when health settings or the TLS of
  // their connections (tls.server, the servers' CA) changed.
  const everyChecker = diff.health || !prevTls.serverLeg.equals(tlsFiles.serverLeg);
  const restart = everyChecker ? next.backends.map((b) => b.name) : [...diff.backends.changed, ...diff.backends.added].map((b) => b.name);
  for (const name of restart) {
    app.checkers.get(name)?.stop();
    const b = next.backends.find((x) => x.name === name)!;
    const c = app.makeChecker(b);
    app.checkers.set(name, c);
    c.start();
  }
  return [...diff.summary, ...tlsSummary];
}

/**
 * What a reload changed in the TLS files when `tls` itself did not (same paths, new contents): a
 * renewed certificate, a new CA for the servers. `before` undefined: `tls` changed, which the
 * summary already says ("tls settings changed").
 */
function tlsFileChanges(before: TlsFiles | undefined, after: TlsFiles): string[] {
  const out: string[] = [];
  const cert = after.credentials?.certificate;
  const old = before?.credentials?.certificate;
  if (cert !== undefined && old !== undefined && cert.fingerprint256 !== old.fingerprint256) {
    out.push(`tls certificate replaced (${cert.subject.replace(/\n/g, ', ')}, valid until ${cert.validTo})`);
  }
  if (before !== undefined && !before.serverLeg.equals(after.serverLeg)) {
    out.push("tls server_ca_file changed (health checks reconnect)");
  }
  return out;
}

/** Remove a backend from the topology once its last session ended. */
function forgetWhenIdle(app: Reloadable, name: string): void {
  const check = () => {
    if (app.sessions(name).length > 0) return;
    clearInterval(timer);
    app.topology.remove(name);
  };
  const timer = setInterval(check, 500);
  timer.unref();
  check();
}
