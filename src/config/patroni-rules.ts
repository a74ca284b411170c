// Rules of `health.patroni` that involve more than one key: a backend's `patroni_port` only
// beside `health.patroni`, a REST port that is not a PostgreSQL port, `ca_file` only for https,
// and how Patroni's etcd is reached (the same rules as `coordination.etcd`). Pure; run by
// rules.ts on a partly parsed document, so every read is guarded.

export type Report = (path: readonly (string | number)[], message: string, hint?: string) => void;

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function backends(doc: Mapping): Mapping[] {
  return Array.isArray(doc.backends) ? doc.backends.map((b) => (isMapping(b) ? b : {})) : [];
}

function backendName(b: Mapping, i: number): string {
  return typeof b.name === 'string' ? `\`${b.name}\` (backends[${i}])` : `backends[${i}]`;
}

/** `backends[].patroni_port` means something only with `health.patroni`. */
function patroniPortNeedsSection(doc: Mapping, report: Report): void {
  backends(doc).forEach((b, i) => {
    if (b.patroni_port === undefined) return;
    report(['backends', i, 'patroni_port'], 'applies only with `health.patroni`', 'add `health: { patroni: { port: 8008 } }`, or remove `patroni_port`');
  });
}

/** The REST port pgwarden asks on a server's host must not be that server's PostgreSQL port. */
function restPorts(doc: Mapping, patroni: Mapping, report: Report): void {
  const shared = typeof patroni.port === 'number' ? patroni.port : undefined;
  backends(doc).forEach((b, i) => {
    const own = typeof b.patroni_port === 'number' ? b.patroni_port : undefined;
    if (typeof b.port !== 'number') return;
    if (own !== undefined && own === b.port) {
      report(['backends', i, 'patroni_port'], `${own} is the PostgreSQL port of ${backendName(b, i)}; pgwarden would ask PostgreSQL for Patroni's REST API`, "give Patroni's `restapi.listen` port (8008 unless configured otherwise)");
    } else if (own === undefined && shared !== undefined && shared === b.port) {
      report(['health', 'patroni', 'port'], `${shared} is the PostgreSQL port of ${backendName(b, i)}; pgwarden would ask PostgreSQL for Patroni's REST API`, "give Patroni's `restapi.listen` port (8008 unless configured otherwise), or set `patroni_port` on that backend");
    }
  });
}

function caFileNeedsHttps(patroni: Mapping, report: Report): void {
  if (patroni.ca_file === undefined || patroni.scheme !== 'http') return;
  report(['health', 'patroni', 'ca_file'], 'applies only to `scheme: https`', "set `scheme: https` when Patroni's REST API has a certificate (restapi.certfile), or remove `ca_file`");
}

/** Endpoints that parsed, as fields.ts writes them back: `scheme://host:port`. */
function secureFlags(etcd: Mapping): boolean[] {
  const list = Array.isArray(etcd.endpoints) ? etcd.endpoints : [];
  return list.filter((url): url is string => typeof url === 'string' && /^https?:\/\//.test(url)).map((url) => url.startsWith('https://'));
}

/** Patroni's etcd: one kind of connection for every endpoint, as for `coordination.etcd` (rules.ts). */
function dcsEtcd(dcs: Mapping, env: NodeJS.ProcessEnv, report: Report): void {
  const etcd = isMapping(dcs.etcd) ? dcs.etcd : {};
  const at = ['health', 'patroni', 'dcs', 'etcd'];
  const secure = new Set(secureFlags(etcd));
  if (secure.size > 1) {
    report([...at, 'endpoints'], 'mixes http:// and https:// endpoints', 'the etcd client uses one kind of connection for all of them: write every endpoint with https:// (or every one with http://)');
  }
  const tls = isMapping(etcd.tls) ? etcd.tls : {};
  if (tls.cert_file !== undefined && tls.key_file === undefined) {
    report([...at, 'tls', 'key_file'], 'required key is missing when `cert_file` is set; expected the path of its private key', 'a client certificate needs its key: set both `cert_file` and `key_file`, or neither');
  } else if (tls.key_file !== undefined && tls.cert_file === undefined) {
    report([...at, 'tls', 'cert_file'], 'required key is missing when `key_file` is set; expected the path of the client certificate', 'set both `cert_file` and `key_file`, or neither');
  }
  const files = ['ca_file', 'cert_file', 'key_file'].filter((k) => tls[k] !== undefined);
  if (files.length > 0 && secure.size === 1 && secure.has(false)) {
    report([...at, 'tls'], `\`${files.join('`, `')}\` ${files.length === 1 ? 'applies' : 'apply'} only to https:// endpoints; every endpoint here is http://`, 'write the endpoints with https://, or remove `tls`');
  }
  const variable = typeof etcd.password_env === 'string' ? etcd.password_env : undefined;
  if (variable === undefined) return;
  if (etcd.user === undefined) {
    report([...at, 'password_env'], 'needs `user` beside it', 'etcd checks a user name and a password together: set `user`, or remove `password_env`');
  } else if (env[variable] === undefined) {
    report([...at, 'password_env'], `environment variable \`${variable}\` is not set`, `export ${variable}=... before starting pgwarden, or remove \`password_env\` and \`user\` if etcd needs no login`);
  } else if (env[variable] === '') {
    report([...at, 'password_env'], `environment variable \`${variable}\` is set but empty`, `export ${variable} with the etcd user's password`);
  }
}

export function patroniRules(doc: Mapping, health: Mapping, env: NodeJS.ProcessEnv, report: Report): void {
  if (!isMapping(health.patroni)) {
    patroniPortNeedsSection(doc, report);
    return;
  }
  restPorts(doc, health.patroni, report);
  caFileNeedsHttps(health.patroni, report);
  if (isMapping(health.patroni.dcs)) dcsEtcd(health.patroni.dcs, env, report);
}
