// The switchover's drain on a FakeClock: new sessions are held (the old primary drains), an idle
// session is closed once it has been idle for a whole poll, a session in a transaction is cut
// only at drain_timeout, and a failure after the drain gives the old primary its sessions back.
// The SQL steps (WAL positions, pg_promote) go to port 1 on loopback, which refuses at once.
import t from 'tap';
import { FakeClock } from '../../src/clock';
import type { BackendConfig, HealthConfig, TlsConfig } from '../../src/config/types';
import { runSwitchover } from '../../src/control/switchover';
import type { Session } from '../../src/proxy/session';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';

const DISABLED_TLS: TlsConfig = { mode: 'passthrough', minVersion: 'TLSv1.2', clientCert: 'off', client: 'allow', server: 'disable' };
const backend = (name: string): BackendConfig => ({ name, host: '127.0.0.1', port: 1, weight: 100, backup: false });
const primaryUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: 1000n, durationMs: 1 } };
const replicaUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', replayLsn: 1000n, receiveLsn: 1000n, replayLagSeconds: 0, durationMs: 1 } };

interface FakeSession {
  name: string;
  idleMark: number | undefined;
  isEstablished: boolean;
  inTransaction: boolean;
  isIdle: boolean;
  closedAt?: number;
  closeAtBoundary(sqlstate: string, message: string): void;
}

t.test('drain: idle sessions after a quiet poll, busy ones at drain_timeout; a failed catch-up restores the primary', async (t) => {
  const clock = new FakeClock(0);
  const topology = new Topology([backend('pg1'), backend('pg2')], { maxReplicaLag: {} });
  topology.update('pg1', primaryUp);
  topology.update('pg2', replicaUp);
  let sessions: FakeSession[] = [];
  const closed: { name: string; at: number; message: string }[] = [];
  const session = (name: string, idle: boolean): FakeSession => {
    const s: FakeSession = {
      name,
      idleMark: idle ? 7 : undefined,
      isEstablished: true,
      inTransaction: !idle,
      isIdle: idle,
      closeAtBoundary(_sqlstate, message) {
        closed.push({ name, at: clock.now(), message });
        sessions = sessions.filter((x) => x !== s);
      },
    };
    return s;
  };
  sessions = [session('idle', true), session('busy', false)];
  const progress: string[] = [];
  let done = false;
  const running = runSwitchover(
    {
      topology,
      login: () => ({ health: { user: 'pgwarden', database: 'postgres', timeout: 1000 } as HealthConfig, tls: DISABLED_TLS }),
      drainTimeout: () => 2000,
      sessionsOn: () => sessions as unknown as Session[],
      preSwitchover: async () => ({ allowed: true }),
      recheck: () => undefined,
      progress: (m) => progress.push(m),
      clock,
    },
    'pg2',
  ).finally(() => (done = true));

  await clock.advanceAsync(0);
  t.equal(topology.get('pg1')?.adminState, 'drain', 'the old primary takes no new sessions');
  t.match(progress, [/draining 2 sessions on pg1/]);
  await clock.advanceAsync(50);
  t.same(closed.map((c) => [c.name, c.at]), [['idle', 50]], 'the idle session is closed after one whole quiet poll');
  await clock.advanceAsync(1900);
  t.same(closed.map((c) => c.name), ['idle'], 'the busy one is left alone before drain_timeout');
  t.equal(done, false);
  await clock.advanceAsync(50);
  t.same(closed.map((c) => [c.name, c.at]), [['idle', 50], ['busy', 2000]], 'and cut at drain_timeout');
  t.match(closed[1]?.message, /drain_timeout reached/);

  // The catch-up asks pg1 (port 1) for its WAL position: refused, so the switchover fails.
  const result = await running;
  t.match(result, { ok: false, from: 'pg1', to: 'pg2', closedIdle: 1, closedInTransaction: 1, durationMs: 2000, error: /pg1/ });
  t.equal(topology.get('pg1')?.adminState, 'ready', 'the old primary takes sessions again');
  t.equal(clock.pendingTimers, 0, 'no timer left');
});

t.test('refusals change nothing', async (t) => {
  const clock = new FakeClock(0);
  const topology = new Topology([backend('pg1'), backend('pg2')], { maxReplicaLag: {} });
  topology.update('pg1', primaryUp);
  topology.update('pg2', replicaUp);
  const deps = {
    topology,
    login: () => ({ health: {} as HealthConfig, tls: DISABLED_TLS }),
    drainTimeout: () => 2000,
    sessionsOn: () => [],
    preSwitchover: async () => ({ allowed: false, reason: 'exit code 3' }),
    recheck: () => undefined,
    progress: () => undefined,
    clock,
  };
  t.match(await runSwitchover(deps, 'pg2'), { ok: false, error: /vetoed by a pre_switchover hook: exit code 3/ });
  t.match(await runSwitchover(deps, 'pg1'), { ok: false, error: /pg1 is already the primary/ });
  t.match(await runSwitchover(deps, 'pg9'), { ok: false, error: /no backend named pg9/ });
  t.equal(topology.get('pg1')?.adminState, 'ready');
  t.equal(clock.pendingTimers, 0);
});
