// ThresholdTracker with explicit times: no clock, no sleeping.
import t from 'tap';
import { ThresholdTracker, type HostReadings } from '../../src/host/thresholds';

const quiet: HostReadings = { cpu: 10, memory: 20, disks: [{ mount: '/', usedPercent: 30 }] };
const reading = (overrides: Partial<HostReadings>): HostReadings => ({ ...quiet, ...overrides });

t.test('an alert is raised only after the value stayed above for `for` ms', async (t) => {
  const tracker = new ThresholdTracker({ cpu: { above: 80, for: 30_000 } });
  t.same(tracker.update(reading({ cpu: 95 }), 0), [], 'first reading above starts the hold');
  t.same(tracker.update(reading({ cpu: 97 }), 29_999), [], 'not yet');
  t.same(tracker.alerts(), []);
  t.same(tracker.update(reading({ cpu: 92 }), 30_000), [{ metric: 'cpu', crossed: true, value: 92, threshold: 80 }]);
  t.same(tracker.alerts(), ['cpu']);
  t.same(tracker.update(reading({ cpu: 99 }), 40_000), [], 'raised once, not on every reading');
});

t.test('a dip below restarts the hold time', async (t) => {
  const tracker = new ThresholdTracker({ cpu: { above: 80, for: 10_000 } });
  tracker.update(reading({ cpu: 90 }), 0);
  tracker.update(reading({ cpu: 50 }), 5_000);
  t.same(tracker.update(reading({ cpu: 90 }), 10_000), [], 'the run started again at 10 s');
  t.same(tracker.update(reading({ cpu: 90 }), 19_999), []);
  t.same(tracker.update(reading({ cpu: 90 }), 20_000), [{ metric: 'cpu', crossed: true, value: 90, threshold: 80 }]);
});

t.test('equal to the threshold is not above it; clearing happens at once', async (t) => {
  const tracker = new ThresholdTracker({ memory: { above: 90, for: 0 } });
  t.same(tracker.update(reading({ memory: 90 }), 0), []);
  t.same(tracker.update(reading({ memory: 90.1 }), 1), [{ metric: 'memory', crossed: true, value: 90.1, threshold: 90 }], 'for: 0 raises on the first reading above');
  t.same(tracker.update(reading({ memory: 90 }), 2), [{ metric: 'memory', crossed: false, value: 90, threshold: 90 }]);
  t.same(tracker.alerts(), []);
  t.same(tracker.update(reading({ memory: 50 }), 3), [], 'cleared once, not on every reading');
});

t.test('disks are tracked per mount', async (t) => {
  const tracker = new ThresholdTracker({ disk: { above: 90, for: 1_000 } });
  const disks = (root: number, varMount: number) => reading({ disks: [{ mount: '/', usedPercent: root }, { mount: '/var', usedPercent: varMount }] });
  t.same(tracker.update(disks(95, 50), 0), []);
  t.same(tracker.update(disks(95, 97), 1_000), [{ metric: 'disk:/', crossed: true, value: 95, threshold: 90 }], '/var only started its hold');
  t.same(tracker.update(disks(95, 97), 2_000), [{ metric: 'disk:/var', crossed: true, value: 97, threshold: 90 }]);
  t.same(tracker.alerts(), ['disk:/', 'disk:/var']);
  t.same(tracker.update(disks(80, 97), 3_000), [{ metric: 'disk:/', crossed: false, value: 80, threshold: 90 }]);
  t.same(tracker.alerts(), ['disk:/var']);
});

t.test('a mount that disappears clears its alert', async (t) => {
  const tracker = new ThresholdTracker({ disk: { above: 90, for: 0 } });
  tracker.update(reading({ disks: [{ mount: '/mnt/x', usedPercent: 99 }] }), 0);
  t.same(tracker.alerts(), ['disk:/mnt/x']);
  t.same(tracker.update(reading({ disks: [] }), 1), [{ metric: 'disk:/mnt/x', crossed: false, value: 99, threshold: 90 }]);
  t.same(tracker.alerts(), []);
});

t.test('metrics without a threshold are never alerted; alerts come in a stable order', async (t) => {
  const none = new ThresholdTracker({});
  t.same(none.update(reading({ cpu: 100, memory: 100, disks: [{ mount: '/', usedPercent: 100 }] }), 0), []);
  t.same(none.alerts(), []);

  const all = new ThresholdTracker({ cpu: { above: 1, for: 0 }, memory: { above: 1, for: 0 }, disk: { above: 1, for: 0 } });
  const crossings = all.update(reading({ disks: [{ mount: '/var', usedPercent: 50 }, { mount: '/', usedPercent: 50 }] }), 0);
  t.same(crossings.map((c) => c.metric), ['cpu', 'memory', 'disk:/var', 'disk:/']);
  t.same(all.alerts(), ['cpu', 'memory', 'disk:/', 'disk:/var']);
});

t.test('a non-finite reading is ignored rather than alerting or clearing', async (t) => {
  const tracker = new ThresholdTracker({ cpu: { above: 80, for: 0 } });
  tracker.update(reading({ cpu: 90 }), 0);
  t.same(tracker.update(reading({ cpu: Number.NaN }), 1), []);
  t.same(tracker.alerts(), ['cpu']);
});
