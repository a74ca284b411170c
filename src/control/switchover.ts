// Planned switchover with zero failed transactions (DESIGN.md, "Planned switchover"):
//   1. pre_switchover hooks may veto;
//   2. hold: the old primary takes no new sessions (they wait in the queue, they do not fail);
//   3. drain: each session on the old primary is closed at a transaction boundary — once it has
//      been idle (ReadyForQuery 'I', nothing in flight) for a whole poll period, so a client that
//      is about to send its next statement is not cut between two statements — up to
//      drain_timeout, then whatever is left is closed (counted, reported);
//   4. catch up: wait until the target has replayed the old primary's last WAL position;
//   5. promote the target with pg_promote(); the old primary, still a primary, is fenced by the
//      split-brain rule (newest timeline wins) until it rejoins as a replica (a hook's job);
//   6. the queue is released to the new primary; post_switchover and on_promote hooks run.
import type { SwitchoverResult } from '../admin/controller';
import { realClock, type Clock } from '../clock';
import type { Session } from '../proxy/session';
import type { Topology } from '../routing/topology';
import { currentWalLsn, promoteServer, replayLsn, type ServerAddress, type ServerLogin } from './admin-sql';
import { drainAtBoundaries } from './drain';

export interface SwitchoverDeps {
  topology: Topology;
  /** The check user and tls.server, for the statements run on the servers (a Config is one). */
  login: () => ServerLogin;
  drainTimeout: () => number;
  sessionsOn(backend: string): Session[];
  /** Veto point; resolves allowed=false to abort before anything changed. */
  preSwitchover(from: ServerAddress, to: ServerAddress): Promise<{ allowed: boolean; reason?: string }>;
  /** Look again now (after the promotion) instead of waiting out the interval. */
  recheck(backend: string): void;
  progress(message: string): void;
  /** Time for the drain, catch-up and polling deadlines (a FakeClock in tests); default the real clock. */
  clock?: Clock;
}

const POLL_MS = 50;

export async function runSwitchover(deps: SwitchoverDeps, to: string): Promise<SwitchoverResult> {
  const clock = deps.clock ?? realClock;
  const sleep = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
  const started = clock.now();
  const topo = deps.topology;
  const target = topo.get(to);
  const old = topo.primary();
  if (!target) return { ok: false, to, error: `no backend named ${to}` };
  if (!old) return { ok: false, to, error: 'there is no primary to switch over from' };
  if (old.name === to) return { ok: false, from: to, to, error: `${to} is already the primary` };
  if (target.state !== 'up' || target.role !== 'replica') return { ok: false, from: old.name, to, error: `${to} is not a healthy replica (state ${target.state}, role ${target.role ?? 'unknown'})` };
  if (target.adminState !== 'ready' || target.fenced) return { ok: false, from: old.name, to, error: `${to} is ${target.fenced ? 'fenced' : target.adminState}` };

  const from = addr(old.config);
  const dest = addr(target.config);
  const veto = await deps.preSwitchover(from, dest);
  if (!veto.allowed) return { ok: false, from: old.name, to, error: `vetoed by a pre_switchover hook: ${veto.reason ?? 'non-zero exit'}` };

  const previousAdmin = old.adminState;
  topo.setAdminState(old.name, 'drain');
  deps.progress(`switchover ${old.name} → ${to}: new sessions wait, draining ${deps.sessionsOn(old.name).length} sessions on ${old.name}`);
  let closedIdle = 0;
  let closedInTransaction = 0;
  try {
    ({ closedIdle, closedInTransaction } = await drainAtBoundaries({
      sessions: () => deps.sessionsOn(old.name),
      timeoutMs: deps.drainTimeout(),
      pollMs: POLL_MS,
      reason: 'switchover',
      idleMessage: `terminating connection: planned switchover from ${old.name} to ${to} under way; reconnect to continue`,
      timeoutMessage: `terminating connection: planned switchover from ${old.name} to ${to}: drain_timeout reached`,
      clock,
    }));
    if (closedInTransaction > 0) deps.progress(`switchover: ${closedInTransaction} sessions were still busy at drain_timeout and were closed`);

    // Catch up: the target must have replayed everything the old primary wrote.
    const login = deps.login();
    const lastLsn = await currentWalLsn(from, login);
    const catchUpDeadline = clock.now() + Math.max(deps.drainTimeout(), 5000);
    for (;;) {
      const replayed = await replayLsn(dest, login);
      if (replayed !== undefined && replayed >= lastLsn) break;
      if (clock.now() > catchUpDeadline) throw new Error(`${to} did not replay up to ${old.name}'s last position in time`);
      await sleep(POLL_MS);
    }
    deps.progress(`switchover: ${to} has replayed everything ${old.name} wrote; promoting ${to}`);
    await promoteServer(dest, login);
    deps.recheck(to);
    deps.recheck(old.name);
    // Wait (bounded) for the checks to see the new primary so the result reflects routing.
    const seenDeadline = clock.now() + 10_000;
    while (topo.primary()?.name !== to && clock.now() < seenDeadline) await sleep(POLL_MS);
    topo.setAdminState(old.name, previousAdmin);
    return { ok: topo.primary()?.name === to, from: old.name, to, durationMs: clock.now() - started, closedIdle, closedInTransaction };
  } catch (e) {
    // Nothing was promoted: give the old primary its sessions back.
    topo.setAdminState(old.name, previousAdmin);
    return { ok: false, from: old.name, to, durationMs: clock.now() - started, closedIdle, closedInTransaction, error: (e as Error).message };
  }
}

function addr(c: { name: string; host: string; port: number }): ServerAddress {
  return { name: c.name, host: c.host, port: c.port };
}
