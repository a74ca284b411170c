// Which backends a listener may send a new session to, and — when there are none — a sentence
// that tells a person why ("no primary available for listener rw: pg1 down (L4 connection
// refused), pg2 in recovery"). Pure: reads the Topology, decides nothing else.
import type { ListenerConfig } from '../config/types';
import { FAILURE_DESCRIPTIONS } from '../health/types';
import type { BackendView, Topology } from './topology';

export interface CandidateSet {
  readonly backends: BackendView[];
  /** Set when `backends` is empty. */
  readonly reason?: string;
  /** True when the set is the primary, reached through `fallback: primary`. */
  readonly fellBack?: boolean;
}

type Listener = Pick<ListenerConfig, 'name' | 'route' | 'fallback'>;

export function candidatesFor(listener: Listener, topo: Topology, exclude?: ReadonlySet<string>): CandidateSet {
  const usable = (v: BackendView) => topo.routable(v) && !exclude?.has(v.name);
  const primary = topo.primary();
  const primaryOk = primary !== undefined && usable(primary);

  if (listener.route === 'primary') {
    if (primaryOk) return { backends: [primary] };
    return { backends: [], reason: `no primary available for listener ${listener.name}: ${explain(topo, 'primary', exclude)}` };
  }

  const replicas = topo.backends().filter((v) => usable(v) && v.role === 'replica' && topo.withinLag(v));
  const pool = listener.route === 'any' && primaryOk ? [primary, ...replicas] : replicas;
  const preferred = preferNonBackup(pool);
  if (preferred.length > 0) return { backends: preferred };

  if (listener.route === 'replica' && listener.fallback === 'primary' && primaryOk) {
    return { backends: [primary], fellBack: true };
  }
  const what = listener.route === 'any' ? 'server' : 'replica';
  return { backends: [], reason: `no ${what} available for listener ${listener.name}: ${explain(topo, 'replica', exclude)}` };
}

/** HAProxy semantics: `backup` servers take traffic only when no other candidate is up. */
function preferNonBackup(pool: BackendView[]): BackendView[] {
  const active = pool.filter((v) => !v.config.backup);
  return active.length > 0 ? active : pool.filter((v) => v.config.backup);
}

function explain(topo: Topology, wanted: 'primary' | 'replica', exclude?: ReadonlySet<string>): string {
  const split = topo.splitBrainMembers();
  const parts = topo.backends().map((v) => `${v.name} ${whyNot(v, wanted, topo, exclude)}`);
  if (wanted === 'primary' && split.length > 1) {
    parts.unshift(`split brain: ${split.join(' and ')} all report primary, writes are held`);
  }
  return parts.join(', ');
}

function whyNot(v: BackendView, wanted: 'primary' | 'replica', topo: Topology, exclude?: ReadonlySet<string>): string {
  if (exclude?.has(v.name)) return 'refused the connection';
  if (v.state === 'init') return v.lastFailure ? `not up yet (${FAILURE_DESCRIPTIONS[v.lastFailure.layer]})` : 'not checked yet';
  if (v.state === 'down') return v.lastFailure ? `down (${FAILURE_DESCRIPTIONS[v.lastFailure.layer]})` : 'down';
  if (v.adminState === 'maint') return 'in maintenance';
  if (v.adminState === 'drain') return 'draining';
  if (v.fenced) return 'fenced (split brain)';
  if (v.agentState !== undefined) return `agent reports ${v.agentState}`;
  if (v.patroniDrain !== undefined) return `draining (${v.patroniDrain})`;
  if (v.effectiveWeight === 0) return 'has weight 0';
  if (wanted === 'primary') return v.role === 'replica' ? 'in recovery' : 'primary (split brain)';
  if (v.role === 'primary') return 'is the primary';
  if (!topo.withinLag(v)) {
    const lag = v.lagBytes !== undefined ? `${v.lagBytes} bytes` : 'unknown';
    const secs = v.lagSeconds !== undefined ? `, ${v.lagSeconds.toFixed(1)} s` : '';
    return `lagging (${lag}${secs}) beyond max_replica_lag`;
  }
  return 'up';
}
