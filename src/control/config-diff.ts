// What a reload changes: which backends and listeners are added, removed, changed or kept.
// Pure, so the rules ("sessions on unchanged backends are untouched") are testable on their own.
import { isDeepStrictEqual } from 'node:util';
import type { BackendConfig, Config, ListenerConfig } from '../config/types';

export interface ConfigDiff {
  backends: { added: BackendConfig[]; removed: string[]; changed: BackendConfig[]; kept: string[] };
  listeners: { added: ListenerConfig[]; removed: string[]; changed: ListenerConfig[]; kept: string[] };
  /** Health settings changed: every checker restarts with the new ones. */
  health: boolean;
  /** Human-readable summary, one line per change. */
  summary: string[];
}

export function diffConfig(before: Config, after: Config): ConfigDiff {
  const backends = diffNamed(before.backends, after.backends);
  const listeners = diffNamed(before.listeners, after.listeners);
  const health = !isDeepStrictEqual(before.health, after.health);
  const summary = [
    ...backends.added.map((b) => `backend ${b.name} added (${b.host}:${b.port})`),
    ...backends.removed.map((n) => `backend ${n} removed (drained)`),
    ...backends.changed.map((b) => `backend ${b.name} changed`),
    ...listeners.added.map((l) => `listener ${l.name} added (${l.host}:${l.port})`),
    ...listeners.removed.map((n) => `listener ${n} removed`),
    ...listeners.changed.map((l) => `listener ${l.name} changed`),
    ...(health ? ['health check settings changed'] : []),
    ...(['failover', 'tls', 'proxy', 'hooks', 'logging', 'host'] as const)
      .filter((k) => !isDeepStrictEqual(before[k], after[k]))
      .map((k) => `${k} settings changed`),
    ...(!isDeepStrictEqual(before.admin, after.admin) ? ['admin settings changed (take effect after a restart)'] : []),
    ...(!isDeepStrictEqual(before.coordination, after.coordination) ? ['coordination settings changed (take effect after a restart)'] : []),
    ...(patroniNeedsRestart(before, after) ? ['health.patroni added, removed, or its `dcs` or `ca_file` changed (take effect after a restart)'] : []),
  ];
  return { backends, listeners, health, summary };
}

/** What the running Patroni watch cannot take from a reload: it is built at start with its DCS client and CA. */
function patroniNeedsRestart(before: Config, after: Config): boolean {
  const a = before.health.patroni;
  const b = after.health.patroni;
  if ((a === undefined) !== (b === undefined)) return true;
  return a !== undefined && b !== undefined && (!isDeepStrictEqual(a.dcs, b.dcs) || a.caFile !== b.caFile);
}

function diffNamed<T extends { name: string }>(before: readonly T[], after: readonly T[]) {
  const old = new Map(before.map((x) => [x.name, x]));
  const now = new Map(after.map((x) => [x.name, x]));
  return {
    added: after.filter((x) => !old.has(x.name)),
    removed: before.filter((x) => !now.has(x.name)).map((x) => x.name),
    changed: after.filter((x) => old.has(x.name) && !isDeepStrictEqual(old.get(x.name), x)),
    kept: after.filter((x) => old.has(x.name) && isDeepStrictEqual(old.get(x.name), x)).map((x) => x.name),
  };
}
