// What pgwarden does when the cluster view changes: a backend going down or up, the primary
// changing or lost, split-brain fencing, an agent's report. Each reaction records the event on
// the timeline and the bus, runs the hooks it calls for, and closes the sessions it must.
import { PrimaryChangeTracker } from './primary-change';
import { SqlState } from '../errors';
import type { StateChange } from '../routing/topology';
import { closeSessions } from './drain';
import type { ControlContext } from './context';
import type { PrimaryLoss } from './primary-loss';

/** An agent's report, already combined per HAProxy rules (control/observability.ts). */
export interface AgentVerdict {
  state: 'up' | 'drain' | 'down' | 'maint';
  weightPercent?: number;
}

interface Fenced {
  backend: string;
  /** The server writes go to instead; none while a cluster's failover handshake runs. */
  keep?: string;
  /** Fenced by the cluster's agreement (coordination) rather than this instance's timeline rule. */
  byCluster?: boolean;
  timeline?: number;
  keeperTimeline?: number;
}

/** Subscribe the reactions to the topology's events. */
export function reactToTopology(ctx: ControlContext, primaryLoss: PrimaryLoss): void {
  const primaryChange = new PrimaryChangeTracker();
  ctx.topology.on('state', (c: StateChange) => onBackendState(ctx, c));
  ctx.topology.on('primary', (p: { from?: string; to?: string }) => onPrimary(ctx, primaryLoss, primaryChange, p));
  ctx.topology.on('fenced', (f: Fenced) => onFenced(ctx, f));
  ctx.topology.on('unfenced', (f: { backend: string; reason: string }) =>
    ctx.timeline.add('info', 'backend.unfenced', `backend ${f.backend} is no longer fenced: ${f.reason}`, { backend: f.backend }),
  );
}

/**
 * An agent's report: state and weight apply to routing; an agent saying down or maint closes
 * the backend's sessions like a failed health check.
 */
export function applyAgentReport(ctx: ControlContext, backend: string, r: AgentVerdict, previous: string, raw: string): void {
  ctx.topology.setAgent(backend, r);
  if (r.state === previous) return;
  const level = r.state === 'up' ? 'info' : 'warn';
  ctx.timeline.add(level, `agent.${r.state}`, `agent on ${backend} reports ${raw.trim() || r.state}`, { backend, state: r.state, weightPercent: r.weightPercent });
  if ((r.state === 'down' || r.state === 'maint') && ctx.config.failover.onDown === 'shutdown-sessions') {
    closeSessions(ctx.sessions(backend), r.state === 'down' ? 'down' : 'maint', SqlState.ADMIN_SHUTDOWN, `terminating connection: the agent on ${backend} reports ${r.state}; reconnect to continue`);
  }
}

function onBackendState(ctx: ControlContext, c: StateChange): void {
  const v = ctx.topology.get(c.backend);
  const detectionMs = c.to === 'down' && v?.firstFailureAt !== undefined ? Math.max(0, Date.now() - v.firstFailureAt) : undefined;
  ctx.bus.emit('backend.state', { backend: c.backend, from: c.from, to: c.to, ...(detectionMs !== undefined && { detectionMs }) });
  if (c.to === 'down') {
    ctx.timeline.add('warn', 'backend.down', `backend ${c.backend} is down${c.reason ? `: ${c.reason}` : ''}`, { backend: c.backend, from: c.from, to: c.to, role: c.role, reason: c.reason });
    if (c.from !== 'init') void ctx.hooks.run('on_backend_down', { backend: ctx.endpoint(c.backend) });
    if (ctx.config.failover.onDown === 'shutdown-sessions') {
      closeSessions(ctx.sessions(c.backend), 'down', SqlState.ADMIN_SHUTDOWN, `terminating connection: server ${c.backend} failed (${c.reason ?? 'health check failed'}); pgwarden is switching, reconnect to continue`);
    }
  } else if (c.to === 'up') {
    ctx.timeline.add('info', 'backend.up', `backend ${c.backend} is up (${c.role ?? 'role unknown'})`, { backend: c.backend, from: c.from, to: c.to, role: c.role });
    if (c.from !== 'init') void ctx.hooks.run('on_backend_up', { backend: ctx.endpoint(c.backend) });
  }
}

function onPrimary(ctx: ControlContext, primaryLoss: PrimaryLoss, primaryChange: PrimaryChangeTracker, p: { from?: string; to?: string }): void {
  ctx.bus.emit('primary.changed', p);
  primaryLoss.onPrimary(p);
  const split = ctx.topology.splitBrainMembers();
  if (split.length > 1) {
    ctx.timeline.add('error', 'primary.split_brain', `split brain: ${split.join(', ')} all report primary; writes are held`, { backends: split });
  } else if (p.to) {
    ctx.timeline.add('info', 'primary.changed', p.from ? `primary changed from ${p.from} to ${p.to}` : `primary is ${p.to}`, { from: p.from, to: p.to, backend: p.to });
  } else {
    ctx.timeline.add('warn', 'primary.lost', `no primary${p.from ? ` (was ${p.from})` : ''}; new write sessions wait`, { from: p.from });
  }
  // Every change of the server that takes writes (followed failover, own promotion, switchover).
  const change = primaryChange.observe(ctx.endpoint(p.to));
  if (change && ctx.clusterHooksHere()) void ctx.hooks.run('on_primary_change', change);
}

function onFenced(ctx: ControlContext, f: Fenced): void {
  const v = ctx.topology.get(f.backend);
  const until = `${f.backend} is fenced until it is back in recovery or cleared with \`pgwarden ready ${f.backend}\``;
  // The common failover: a replica promoted while the old primary was still failing its checks
  // (crashed, not yet down after `fall`). Same rule, but no second server is taking writes.
  const failing = v !== undefined && v.state === 'up' && v.transitional;
  const [level, message] = f.byCluster
    ? (['warn', f.keep
        ? `the cluster agreed on ${f.keep} as primary; ${f.backend} also claims primary here and is fenced until it is back in recovery`
        : `the cluster is replacing primary ${f.backend} (failover or switchover under way): no writes reach it from this instance`] as const)
    : failing
      ? (['warn', `${f.keep} (timeline ${f.keeperTimeline ?? '?'}) was promoted while ${f.backend} (timeline ${f.timeline ?? '?'}) was failing its checks; writes go to ${f.keep}, ${until}`] as const)
      : (['error', `split brain: ${f.backend} (timeline ${f.timeline ?? '?'}) and ${f.keep} (timeline ${f.keeperTimeline ?? '?'}) both accept writes; writes go to ${f.keep} only, ${until}`] as const);
  ctx.timeline.add(level, 'backend.fenced', message, { backend: f.backend, keep: f.keep });
  ctx.bus.emit('backend.fenced', { backend: f.backend, keep: f.keep ?? '' });
  closeSessions(
    ctx.sessions(f.backend),
    'fenced',
    SqlState.ADMIN_SHUTDOWN,
    f.keep
      ? `terminating connection: server ${f.backend} was fenced (split brain); pgwarden routes writes to ${f.keep}, reconnect to continue`
      : `terminating connection: the cluster is replacing primary ${f.backend}; reconnect to continue`,
  );
  if (v && ctx.clusterHooksHere()) void ctx.hooks.run('on_fence', { backend: ctx.endpoint(f.backend), newPrimary: ctx.endpoint(f.keep) });
}
