// Check results that say nothing about the server: a full server (53300 at connect, L7FULL) and
// pgwarden out of file descriptors (EMFILE/ENFILE, SOCKERR) move neither rise nor fall.
import t from 'tap';
import { HealthChecker, type CheckerStatus } from '../../src/health/checker';
import { next, INITIAL_STATE } from '../../src/health/state-machine';
import { classify } from '../../src/health/failure-classify';
import { FakeClock } from '../../src/clock';
import { testBackend, testHealth } from '../helpers/health-fixtures';
import type { Probe, ProbeResult } from '../../src/health/types';

const OK: ProbeResult = { ok: true, role: 'primary', currentLsn: 1n, durationMs: 1 };
const FULL: ProbeResult = { ok: false, layer: 'L7FULL', message: 'sorry, too many clients already (SQLSTATE 53300)', durationMs: 1 };
const EMFILE: ProbeResult = { ok: false, layer: 'SOCKERR', message: 'pgwarden cannot open a socket: connect EMFILE', durationMs: 1 };
const REFUSED: ProbeResult = { ok: false, layer: 'L4CON', message: 'connect ECONNREFUSED', durationMs: 1 };

t.test('state machine: no verdict leaves every state as it was', async (t) => {
  const p = { rise: 2, fall: 2 };
  const up = next(INITIAL_STATE, 'success', p);
  const goingDown = next(up, 'failure', p);
  for (const s of [INITIAL_STATE, up, goingDown, next(up, 'failure', { rise: 1, fall: 1 })]) t.equal(next(s, 'no-verdict', p), s);
});

t.test('classify: 53300 is L7FULL in any phase; EMFILE and ENFILE are SOCKERR', async (t) => {
  const full = { code: '53300', severity: 'FATAL', message: 'sorry, too many clients already' };
  t.match(classify(full, 'authenticating'), { layer: 'L7FULL', message: /too many clients already \(SQLSTATE 53300\)/ });
  t.match(classify({ ...full, message: 'too many connections for role "pgwarden"' }, 'connecting'), { layer: 'L7FULL' });
  t.match(classify(Object.assign(new Error('connect EMFILE 127.0.0.1:5432 - Local (undefined:undefined)'), { code: 'EMFILE' }), 'connecting'), { layer: 'SOCKERR', message: /pgwarden cannot open a socket/ });
  t.match(classify(Object.assign(new Error('connect ENFILE'), { code: 'ENFILE' }), 'connecting'), { layer: 'SOCKERR' });
  t.match(classify(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'connecting'), { layer: 'L4CON' }, 'unchanged');
});

t.test('checker: an up server that is full or unreachable for lack of descriptors stays up; real failures still count', async (t) => {
  const clock = new FakeClock(0);
  const steps = [OK, FULL, FULL, FULL, EMFILE, EMFILE, FULL, REFUSED, FULL, REFUSED];
  let i = 0;
  const probe: Probe = () => Promise.resolve(steps[Math.min(i++, steps.length - 1)]!);
  const checker = new HealthChecker({ backend: testBackend('pg1'), health: { ...testHealth, rise: 2, fall: 2 }, probe, clock });
  const seen: CheckerStatus[] = [];
  checker.on('result', (s) => seen.push(s));
  checker.start();
  while (seen.length < 7) await clock.advanceAsync(100);
  t.same(seen.map((s) => s.state), ['up', 'up', 'up', 'up', 'up', 'up', 'up'], 'seven results, no verdict against it');
  t.equal(seen[6]!.role, 'primary', 'the role it had');
  t.match(seen[6]!.lastResult, { layer: 'L7FULL' }, 'the last result is shown as it was');
  while (seen.length < 10) await clock.advanceAsync(100);
  t.same(seen.slice(7).map((s) => [s.state, s.failures]), [['up', 1], ['up', 1], ['down', 0]], 'a refused connect still counts towards fall');
  checker.stop();
});
