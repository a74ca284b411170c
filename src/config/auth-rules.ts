// Rules of the `auth` section that involve more than one key: `mode: proxy` needs the role
// auth.query runs as and the variable holding its password; the other keys mean something only
// under proxy, so under passthrough they are refused (they would be ignored). Pure, and like
// rules.ts it judges only values that parsed. The password itself is never shown.

/** The same shape as rules.ts's Report (not imported: rules.ts imports this file). */
type Report = (path: readonly (string | number)[], message: string, hint?: string) => void;

type Mapping = Record<string, unknown>;

const PROXY_ONLY = ['user', 'password_env', 'query', 'database'] as const;

export function authRules(auth: Mapping, env: NodeJS.ProcessEnv, report: Report): void {
  const mode = typeof auth.mode === 'string' ? auth.mode : undefined;
  if (mode === 'passthrough') {
    for (const key of PROXY_ONLY) {
      if (auth[key] === undefined) continue;
      report(['auth', key], 'applies only to `mode: proxy` (here `mode: passthrough`), so it would be ignored', `under passthrough clients authenticate with the servers themselves: remove \`${key}\`, or set \`mode: proxy\``);
    }
    return;
  }
  if (mode !== 'proxy') return;
  if (auth.user === undefined) {
    report(['auth', 'user'], 'required key is missing when `mode` is `proxy`; expected the role auth.query runs as', 'pgwarden logs in as this role to read the stored password of each client\'s user: e.g. `user: pgwarden_auth` (see the README, "Authentication at the proxy")');
  }
  const variable = typeof auth.password_env === 'string' ? auth.password_env : undefined;
  if (auth.password_env === undefined) {
    report(['auth', 'password_env'], "required key is missing when `mode` is `proxy`; expected the name of the environment variable holding the auth user's password", 'e.g. `password_env: PGWARDEN_AUTH_PASSWORD`, and export that variable before starting pgwarden');
  } else if (variable !== undefined) {
    const value = env[variable];
    if (value === undefined) report(['auth', 'password_env'], `environment variable \`${variable}\` is not set`, `export ${variable}=... (the auth user's password) before starting pgwarden`);
    else if (value === '') report(['auth', 'password_env'], `environment variable \`${variable}\` is set but empty`, `export ${variable} with the auth user's password`);
  }
  if (typeof auth.query === 'string' && !auth.query.includes('$1')) {
    report(['auth', 'query'], 'must use `$1`, the user name of the client\'s startup packet', 'e.g. `SELECT usename, passwd FROM pgwarden.get_auth($1)`');
  }
}
