import t from 'tap';
import { Balancer, type Pickable } from '../../src/routing/balancer';

const b = (name: string, weight = 100, activeSessions = 0): Pickable => ({ name, effectiveWeight: weight, activeSessions });

function counts(picks: (Pickable | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) if (p) out[p.name] = (out[p.name] ?? 0) + 1;
  return out;
}

t.test('empty and single candidate', async (t) => {
  const bal = new Balancer('roundrobin');
  t.equal(bal.pick([]), undefined);
  const only = b('a');
  t.equal(bal.pick([only]), only);
});

t.test('roundrobin alternates equal weights', async (t) => {
  const bal = new Balancer('roundrobin');
  const cands = [b('a'), b('b')];
  const names = Array.from({ length: 6 }, () => bal.pick(cands)!.name);
  t.same(names, ['a', 'b', 'a', 'b', 'a', 'b']);
});

t.test('roundrobin honours weights smoothly (2:1)', async (t) => {
  const bal = new Balancer('roundrobin');
  const cands = [b('a', 200), b('b', 100)];
  const names = Array.from({ length: 6 }, () => bal.pick(cands)!.name);
  t.same(counts(names.map((n) => b(n))), { a: 4, b: 2 });
  t.not(names.slice(0, 3).join(''), 'aaa', 'no bursts: b appears within every 3 picks');
});

t.test('roundrobin keeps spreading when the candidate set changes', async (t) => {
  const bal = new Balancer('roundrobin');
  const a = b('a'), c = b('c');
  bal.pick([a, b('b'), c]);
  const picks = Array.from({ length: 4 }, () => bal.pick([a, c])!.name);
  t.same(counts(picks.map((n) => b(n))), { a: 2, c: 2 });
});

t.test('leastconn prefers the least loaded per unit of weight', async (t) => {
  const bal = new Balancer('leastconn');
  t.equal(bal.pick([b('a', 100, 5), b('b', 100, 2)])!.name, 'b');
  t.equal(bal.pick([b('a', 200, 4), b('b', 100, 3)])!.name, 'a', '4/200 < 3/100');
  const tied = [b('a', 100, 1), b('b', 100, 1)];
  t.same(new Set([bal.pick(tied)!.name, bal.pick(tied)!.name]), new Set(['a', 'b']), 'ties rotate');
});

t.test('random with two choices takes the less loaded of two weighted picks', async (t) => {
  let i = 0;
  const seq = [0.1, 0.9]; // first pick a, second pick b
  const bal = new Balancer('random', () => seq[i++ % seq.length]);
  t.equal(bal.pick([b('a', 100, 9), b('b', 100, 1)])!.name, 'b');
  i = 0;
  t.equal(bal.pick([b('a', 100, 1), b('b', 100, 9)])!.name, 'a');
});

t.test('random follows weights over many picks', async (t) => {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const bal = new Balancer('random', rnd);
  const cands = [b('a', 300), b('b', 100)];
  const c = counts(Array.from({ length: 4000 }, () => bal.pick(cands)));
  t.ok(c.a > c.b * 2, `a (weight 300) gets most picks: ${JSON.stringify(c)}`);
});
