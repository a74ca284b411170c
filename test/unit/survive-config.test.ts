// sessions.survive (issue 19): on | off, default off; YAML 1.1 booleans are read as on/off; a
// wrong word is reported at its key with a hint.
import t from 'tap';
import { parseConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';
import { describeConfig } from '../../src/config/describe';

const MINIMAL = `listeners:
  - { name: rw, bind: "127.0.0.1:6432", route: primary }
backends:
  - { name: pg1, host: 127.0.0.1, port: 5432 }
`;

t.test('default off; on, off, true and false', async (t) => {
  t.same(parseConfig(MINIMAL, {}).sessions, { survive: 'off' });
  t.same(parseConfig(`${MINIMAL}sessions:\n`, {}).sessions, { survive: 'off' }, 'an empty section is the default');
  for (const [written, read] of [['on', 'on'], ['off', 'off'], ['true', 'on'], ['false', 'off'], ['"on"', 'on']] as const) {
    t.equal(parseConfig(`${MINIMAL}sessions: { survive: ${written} }\n`, {}).sessions.survive, read, `survive: ${written}`);
  }
  t.match(describeConfig(parseConfig(`${MINIMAL}sessions: { survive: on }\n`, {})), /sessions: survive: on/);
});

t.test('a wrong value names the key and suggests the word', async (t) => {
  let error: ConfigError | undefined;
  try {
    parseConfig(`${MINIMAL}sessions: { survive: yes please }\n`, {}, 'test.yaml');
  } catch (e) {
    if (e instanceof ConfigError) error = e;
  }
  t.ok(error, 'a ConfigError');
  t.match(error?.problems, [{ path: 'sessions.survive', message: /expected `on` or `off`/ }]);
  try {
    parseConfig(`${MINIMAL}sessions: { survive: enabled }\n`, {}, 'test.yaml');
  } catch (e) {
    t.match((e as ConfigError).problems, [{ path: 'sessions.survive', hint: /did you mean `on`/ }]);
  }
  try {
    parseConfig(`${MINIMAL}sessions: { survival: on }\n`, {}, 'test.yaml');
  } catch (e) {
    t.match((e as ConfigError).problems, [{ path: 'sessions.survival', message: /unknown key/ }]);
  }
});
