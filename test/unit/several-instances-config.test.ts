// The three-instance example (config/several-instances/, README "Running several instances")
// loads, and its files differ only in the instance's name.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load';

const env = { PGWARDEN_CHECK_PASSWORD: 'x', PGWARDEN_ADMIN_TOKEN: 'y' };
const load = (name: string) => parseConfig(readFileSync(join(__dirname, '..', '..', 'config', 'several-instances', `${name}.yaml`), 'utf8'), env, `${name}.yaml`);

t.test('a.yaml, b.yaml and c.yaml load and differ only in coordination.name', async (t) => {
  const [a, b, c] = ['a', 'b', 'c'].map(load);
  for (const [name, config] of [['a', a], ['b', b], ['c', c]] as const) {
    t.match(config.coordination, { name, members: ['a', 'b', 'c'], onEtcdLoss: 'keep' }, `${name}.yaml names itself ${name}`);
    t.equal(config.failover.mode, 'promote');
  }
  const strip = (x: typeof a) => ({ ...x, coordination: { ...x.coordination!, name: '' } });
  t.same(strip(b), strip(a), 'b differs from a only in the name');
  t.same(strip(c), strip(a), 'c differs from a only in the name');
});
