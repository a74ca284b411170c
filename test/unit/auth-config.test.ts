// The `auth` section: passthrough by default; `mode: proxy` needs `user` and `password_env`
// (a variable that is set and not empty); the proxy keys under passthrough are refused; the
// password is never part of a message.
import t, { type Test } from 'tap';
import { parseConfig } from '../../src/config/load';
import { describeConfig } from '../../src/config/describe';
import { ConfigError } from '../../src/errors';

const MINIMAL = `listeners:
  - { name: rw, bind: "127.0.0.1:6432", route: primary }
backends:
  - { name: pg1, host: 127.0.0.1, port: 5432 }
`;
const SECRET = 'hunter2-auth-pw';

function problems(t: Test, text: string, env: NodeJS.ProcessEnv = {}): { path: string; message: string; hint?: string }[] {
  try {
    parseConfig(text, env, 'test.yaml');
  } catch (e) {
    if (e instanceof ConfigError) {
      t.notMatch(e.format(), SECRET, 'the password is never shown');
      return e.problems.map((p) => ({ path: p.path, message: p.message, ...(p.hint === undefined ? {} : { hint: p.hint }) }));
    }
    throw e;
  }
  t.fail('expected a ConfigError');
  return [];
}

t.test('defaults and a proxy section that loads', async (t) => {
  t.same(parseConfig(MINIMAL, {}).auth, { mode: 'passthrough', query: 'SELECT usename, passwd FROM pgwarden.get_auth($1)', database: 'postgres' });
  const config = parseConfig(`${MINIMAL}auth:\n  mode: proxy\n  user: pgwarden_auth\n  password_env: AUTH_PW\n  database: app\n`, { AUTH_PW: SECRET });
  t.same(config.auth, { mode: 'proxy', user: 'pgwarden_auth', password: SECRET, query: 'SELECT usename, passwd FROM pgwarden.get_auth($1)', database: 'app' });
  t.notMatch(describeConfig(config), SECRET, '`check` never prints it');
  t.match(describeConfig(config), /auth: proxy/);
});

t.test('mode proxy without user or password_env: each at its key path with a hint', async (t) => {
  const found = problems(t, `${MINIMAL}auth:\n  mode: proxy\n`);
  t.same(found.map((p) => p.path), ['auth.user', 'auth.password_env']);
  t.match(found[0]!.message, /required key is missing when `mode` is `proxy`/);
  t.ok(found.every((p) => p.hint), 'every problem has a hint');
});

t.test('the password variable must be set and not empty; `password` itself is refused', async (t) => {
  const text = `${MINIMAL}auth:\n  mode: proxy\n  user: a\n  password_env: AUTH_PW\n`;
  t.same(problems(t, text, {}).map((p) => [p.path, p.message]), [['auth.password_env', 'environment variable `AUTH_PW` is not set']]);
  t.same(problems(t, text, { AUTH_PW: '' }).map((p) => p.path), ['auth.password_env']);
  const written = problems(t, `${MINIMAL}auth:\n  mode: proxy\n  user: a\n  password_env: AUTH_PW\n  password: ${SECRET}\n`, { AUTH_PW: 'x' });
  t.same(written.map((p) => p.path), ['auth.password']);
  t.match(written[0]!.hint, /password_env/);
});

t.test('proxy keys under passthrough, an unknown mode, a query without $1', async (t) => {
  t.same(problems(t, `${MINIMAL}auth:\n  user: a\n`).map((p) => p.path), ['auth.user']);
  t.match(problems(t, `${MINIMAL}auth:\n  mode: scram\n`)[0], { path: 'auth.mode', message: /passthrough/ });
  t.same(problems(t, `${MINIMAL}auth:\n  mode: proxy\n  user: a\n  password_env: P\n  query: SELECT 1\n`, { P: 'x' }).map((p) => p.path), ['auth.query']);
});
