// Property-based fuzzing of the session state tracker (src/survive/state-tracker.ts): random
// sequences of protocol-shaped and junk messages, both directions, never make it throw, and once
// a statement with unknown effects has been sent the session stays unmovable whatever follows.
// FUZZ_RUNS inputs per property (test/helpers/fuzz.ts).
import t from 'tap';
import { StateTracker } from '../../src/survive/state-tracker';
import { MAX_PREPARED } from '../../src/survive/session-state';
import { fc, runProperty, bytesArb, cstringArb } from '../helpers/fuzz';
import { B, BIND_OK, CC, CLOSE, CLOSE_OK, E, EMPTY, ERR, feed, P, PARSE_OK, PS, Q, ROW, SUSPENDED, SYNC, Z, type Msg } from '../helpers/protocol-messages';

const FRAGMENTS = [
  'SET a.b = 1', "SET search_path TO app, 'x;y'", 'SET LOCAL work_mem = 1', 'RESET a.b', 'RESET ALL', 'SET ROLE r', 'RESET ROLE',
  'LISTEN ch', 'UNLISTEN ch', 'UNLISTEN *', 'PREPARE p AS SELECT 1', 'DEALLOCATE p', 'DEALLOCATE ALL', 'DISCARD ALL',
  'DISCARD TEMP', 'BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT s', 'ROLLBACK TO s', 'RELEASE s', 'SELECT 1', "SELECT 'a;b'",
  'SELECT $$;$$', 'CREATE TEMP TABLE t (a int)', 'SELECT pg_advisory_lock(1)', 'DECLARE c CURSOR WITH HOLD FOR SELECT 1',
  'CLOSE c', 'CLOSE ALL', '/* ; */ SELECT 2 -- ;\n', "E'\\'", '$q$', '"', "'", '(', '',
];
const UNKNOWN = ["SELECT set_config('a.b', '1', false)", 'DO $$ BEGIN END $$', 'SET SESSION AUTHORIZATION x', 'SET a FROM CURRENT', "LOAD 'x'"];
const TAGS = ['SET', 'RESET', 'LISTEN', 'UNLISTEN', 'PREPARE', 'DEALLOCATE', 'DEALLOCATE ALL', 'DISCARD ALL', 'DISCARD TEMP', 'BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE', 'SELECT 1', 'CREATE TABLE', 'DECLARE CURSOR', 'CLOSE CURSOR', 'CLOSE CURSOR ALL', 'COPY 1', ''];
const NAMES = ['', 's1', 's2', 'p', 'P'];

const sqlArb = fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 5 }).map((parts) => parts.join('; '));

const clientArb: fc.Arbitrary<Msg> = fc.oneof(
  { weight: 6, arbitrary: sqlArb.map(Q) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...NAMES), fc.oneof(sqlArb, fc.constantFrom(...FRAGMENTS)), fc.array(fc.nat(), { maxLength: 3 })).map(([n, q, ty]) => P(n, q, ty)) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(...NAMES)).map(([p, s]) => B(p, s)) },
  { weight: 2, arbitrary: fc.constantFrom(...NAMES).map((n) => E(n)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom<'S' | 'P'>('S', 'P'), fc.constantFrom(...NAMES)).map(([w, n]) => CLOSE(w, n)) },
  { weight: 3, arbitrary: fc.constant(SYNC) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), bytesArb(24)).map(([type, body]): Msg => ({ from: 'client', type, body })) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0x51, 0x50, 0x42, 0x45, 0x43, 0x46), bytesArb(12)).map(([type, body]): Msg => ({ from: 'client', type, body })) },
);

const serverArb: fc.Arbitrary<Msg> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...TAGS).map(CC) },
  { weight: 4, arbitrary: fc.constantFrom<'I' | 'T' | 'E'>('I', 'T', 'E').map(Z) },
  { weight: 2, arbitrary: fc.constant(ERR()) },
  { weight: 3, arbitrary: fc.constantFrom(PARSE_OK, BIND_OK, CLOSE_OK, EMPTY, SUSPENDED, ROW) },
  { weight: 1, arbitrary: fc.tuple(cstringArb(), cstringArb()).map(([n, v]) => PS(n, v)) },
  { weight: 1, arbitrary: fc.constant(PS('client_encoding', 'SJIS')) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), bytesArb(24)).map(([type, body]): Msg => ({ from: 'server', type, body })) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0x43, 0x5a, 0x53, 0x45), bytesArb(6)).map(([type, body]): Msg => ({ from: 'server', type, body })) },
);

const streamArb = fc.array(fc.oneof(clientArb, serverArb), { maxLength: 40 });

function exercise(tr: StateTracker): void {
  const m = tr.movable();
  if (!m.ok && (typeof m.reason !== 'string' || m.reason.length === 0)) throw new Error('an unmovable session without a reason');
  const steps = tr.replay();
  if (steps.length > 3 * MAX_PREPARED + 100) throw new Error('replay grew past the caps');
  tr.parameters();
}

t.test('random message sequences never throw', async (t) => {
  const n = runProperty(
    fc.property(streamArb, (msgs) => {
      const tr = new StateTracker();
      for (const m of msgs) {
        feed(tr, m);
        exercise(tr);
      }
    }),
  );
  t.pass(`${n} sequences`);
});

t.test('once a statement with unknown effects is sent, the session never becomes movable again', async (t) => {
  const n = runProperty(
    fc.property(streamArb, fc.constantFrom(...UNKNOWN), fc.boolean(), streamArb, (before, unknown, extended, after) => {
      const tr = new StateTracker();
      feed(tr, ...before);
      if (extended) feed(tr, P('', unknown), B('', ''), E(), SYNC);
      else feed(tr, Q(`SELECT 1; ${unknown}`));
      if (tr.movable().ok) throw new Error('movable right after an unknown statement');
      for (const m of after) {
        feed(tr, m);
        if (tr.movable().ok) throw new Error('movable again after an unknown statement');
      }
      // Answer everything and end every transaction: still unmovable.
      feed(tr, CC('SET'), ERR(), Z('I'), Q('DISCARD ALL'), CC('DISCARD ALL'), Z('I'));
      if (tr.movable().ok) throw new Error('movable after DISCARD ALL');
    }),
  );
  t.pass(`${n} sequences`);
});
