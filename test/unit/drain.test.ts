// The one drain routine that a graceful shutdown and a planned switchover both run
// (control/drain.ts), against fake sessions: idle ones close at a transaction boundary, busy
// ones are cut at the deadline and counted, a session still logging in counts as idle. The
// counts do not depend on timing: a session idle at the deadline is counted idle either way.
import t from 'tap';
import { drainAtBoundaries } from '../../src/control/drain';
import type { Session } from '../../src/proxy/session';

interface Fake {
  name: string;
  isEstablished: boolean;
  inTransaction: boolean;
  isIdle: boolean;
  idleMark: number | undefined;
  awaitingServer?: boolean;
  closed?: { sqlstate: string; message: string; reason: string };
  closeAtBoundary(sqlstate: string, message: string, reason: string): void;
}

function fake(name: string, over: Partial<Fake>, open: Fake[]): Fake {
  const s: Fake = {
    name,
    isEstablished: true,
    inTransaction: false,
    isIdle: true,
    idleMark: 1,
    closeAtBoundary(sqlstate, message, reason) {
      this.closed = { sqlstate, message, reason };
      open.splice(open.indexOf(this), 1);
    },
    ...over,
  };
  open.push(s);
  return s;
}

const drain = (open: Fake[], timeoutMs: number, reason: 'switchover' | 'shutdown' = 'switchover') =>
  drainAtBoundaries({ sessions: () => open as unknown as Session[], timeoutMs, pollMs: 10, reason, idleMessage: 'idle bye', timeoutMessage: 'deadline bye' });

t.test('an idle session closes at a boundary once idle for a whole sweep, long before the deadline', async (t) => {
  const open: Fake[] = [];
  const idle = fake('idle', {}, open);
  const r = await drain(open, 60_000);
  t.same(r, { closedIdle: 1, closedInTransaction: 0, leftAtDeadline: 0 });
  t.same(idle.closed, { sqlstate: '57P01', message: 'idle bye', reason: 'switchover' });
});

t.test('a busy session is cut at the deadline and counted; one still logging in counts as idle', async (t) => {
  const open: Fake[] = [];
  const busy = fake('busy', { inTransaction: true, isIdle: false, idleMark: undefined }, open);
  const login = fake('login', { isEstablished: false, isIdle: false, idleMark: undefined }, open);
  const r = await drain(open, 100);
  t.same(r, { closedIdle: 1, closedInTransaction: 1, leftAtDeadline: 2 });
  t.same(busy.closed, { sqlstate: '57P01', message: 'deadline bye', reason: 'switchover' });
  t.equal(login.closed?.message, 'deadline bye');
  t.equal(open.length, 0);
});

t.test('returns as soon as nothing is left, and at once with timeout 0', async (t) => {
  const open: Fake[] = [];
  const started = Date.now();
  t.same(await drainAtBoundaries({ sessions: () => open as unknown as Session[], timeoutMs: 10_000, pollMs: 10, reason: 'shutdown', idleMessage: 'x', timeoutMessage: 'x' }), {
    closedIdle: 0,
    closedInTransaction: 0,
    leftAtDeadline: 0,
  });
  t.ok(Date.now() - started < 5_000, 'no session: no wait');
  const busy = fake('busy', { inTransaction: true, isIdle: false, idleMark: undefined }, open);
  const r = await drainAtBoundaries({ sessions: () => open as unknown as Session[], timeoutMs: 0, pollMs: 10, reason: 'shutdown', idleMessage: 'x', timeoutMessage: 'shutting down' });
  t.same(r, { closedIdle: 0, closedInTransaction: 1, leftAtDeadline: 1 });
  t.equal(busy.closed?.reason, 'shutdown');
});

t.test('rerouteUnanswered: a session whose server has not answered yet goes back to routing at the first sweep', async (t) => {
  const open: Fake[] = [];
  const waiting = fake('waiting', { isEstablished: false, isIdle: false, idleMark: undefined, awaitingServer: true }, open);
  const busy = fake('busy', { inTransaction: true, isIdle: false, idleMark: undefined }, open);
  const done = drainAtBoundaries({ sessions: () => open as unknown as Session[], timeoutMs: 60_000, pollMs: 10, reason: 'patroni', idleMessage: 'idle bye', timeoutMessage: 'deadline bye', rerouteUnanswered: true });
  t.same(waiting.closed, { sqlstate: '57P01', message: 'idle bye', reason: 'patroni' }, 'closeAtBoundary at once (for a session awaiting its server, that is a redispatch)');
  t.equal(busy.closed, undefined, 'a busy session is left to finish');
  busy.inTransaction = false;
  busy.isIdle = true;
  busy.idleMark = 2;
  t.same(await done, { closedIdle: 1, closedInTransaction: 0, leftAtDeadline: 0 });
  t.equal(busy.closed?.message, 'idle bye');
});

t.test('a session that will move (sessions.survive) is taken at its first idle boundary, however busy', async (t) => {
  const open: Fake[] = [];
  // A pool hands this session out again every few ms: a new ReadyForQuery count at every sweep,
  // never idle for a whole sweep period.
  let mark = 0;
  const busy = fake('busy-but-movable', {}, open) as Fake & { wouldMoveFor(reason: string): boolean };
  Object.defineProperty(busy, 'idleMark', { get: () => ++mark });
  busy.wouldMoveFor = (reason) => reason === 'switchover';
  const r = await drain(open, 60_000);
  t.same(r, { closedIdle: 1, closedInTransaction: 0, leftAtDeadline: 0 }, 'taken at a boundary, not at the deadline');
  t.same(busy.closed, { sqlstate: '57P01', message: 'idle bye', reason: 'switchover' });

  const kept: Fake[] = [];
  let m2 = 0;
  const closing = fake('busy-not-moving', {}, kept) as Fake & { wouldMoveFor(reason: string): boolean };
  Object.defineProperty(closing, 'idleMark', { get: () => ++m2 });
  closing.wouldMoveFor = () => false;
  const r2 = await drain(kept, 200);
  t.same(r2, { closedIdle: 1, closedInTransaction: 0, leftAtDeadline: 1 }, 'a session that would be closed still waits for a quiet sweep (here: the deadline)');
  t.equal(closing.closed?.message, 'deadline bye');
});
