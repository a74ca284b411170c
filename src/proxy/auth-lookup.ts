// auth.mode proxy: where pgwarden learns a user's stored secret. auth.query runs as auth.user on
// the current primary (or, without one, on any server that is up: a replica has the same
// pg_authid), over the checks' TLS (`tls.server`), on a short-lived connection; the answer is
// kept briefly (CACHE_MS) for at most MAX_CACHED users, and lookups for one user at the same
// time share one query. A password change therefore reaches pgwarden within CACHE_MS.
// The auth user's password never reaches an error message (it is cut out, as admin-sql.ts does).
import type { ConnectionOptions } from 'node:tls';
import { Client } from 'pg';
import type { AuthConfig, TlsConfig } from '../config/types';
import { PgwardenError } from '../errors';
import { serverLegOptions } from '../net/tls-credentials';
import { serverRefusedTls } from '../health/failure-classify';
import type { BackendView, Topology } from '../routing/topology';
import { parseVerifier } from '../survive/scram';
import type { StoredSecret } from '../survive/client-auth';

const CACHE_MS = 5_000;
const MAX_CACHED = 10_000;
const MD5_HASH = /^md5[0-9a-f]{32}$/;

/** What auth.query said: a secret pgwarden can check, or a reason to leave the session end to end. */
export type Lookup = StoredSecret | { readonly kind: 'passthrough'; readonly why: string };

/** auth.query could not be run; the client gets 57P03 with this message. */
export class AuthLookupError extends PgwardenError {
  declare readonly code: 'PGW_AUTH_LOOKUP';
  constructor(message: string) {
    super('PGW_AUTH_LOOKUP', message);
  }
}

export interface AuthLookupDeps {
  readonly topology: Topology;
  auth(): AuthConfig;
  tls(): TlsConfig;
  readonly timeoutMs: () => number;
}

/** pg_authid's rolpassword as pgwarden uses it. */
export function classify(row: readonly unknown[] | undefined): Lookup {
  if (row === undefined) return { kind: 'unknown-user' };
  const passwd = row[1];
  if (passwd === null || passwd === undefined) return { kind: 'passthrough', why: 'the role has no password' };
  if (typeof passwd !== 'string') return { kind: 'passthrough', why: 'auth.query returned a password that is not text' };
  const verifier = parseVerifier(passwd);
  if (verifier) return { kind: 'scram-sha-256', verifier };
  if (MD5_HASH.test(passwd)) return { kind: 'md5', hash: passwd };
  return { kind: 'passthrough', why: 'the stored password is neither a SCRAM-SHA-256 verifier nor an md5 hash' };
}

export class AuthLookup {
  private readonly cache = new Map<string, { readonly at: number; readonly value: Lookup }>();
  private readonly inFlight = new Map<string, Promise<Lookup>>();

  constructor(private readonly deps: AuthLookupDeps) {}

  lookup(user: string): Promise<Lookup> {
    const hit = this.cache.get(user);
    if (hit && Date.now() - hit.at < CACHE_MS) return Promise.resolve(hit.value);
    const running = this.inFlight.get(user);
    if (running) return running;
    const p = this.query(user).then(
      (value) => {
        this.inFlight.delete(user);
        if (this.cache.size >= MAX_CACHED) this.evict();
        this.cache.set(user, { at: Date.now(), value });
        return value;
      },
      (err: unknown) => {
        this.inFlight.delete(user);
        throw err;
      },
    );
    this.inFlight.set(user, p);
    return p;
  }

  /** Drops expired entries, and the oldest half if that was not enough (Map keeps insertion order). */
  private evict(): void {
    const now = Date.now();
    for (const [user, e] of this.cache) if (now - e.at >= CACHE_MS) this.cache.delete(user);
    if (this.cache.size < MAX_CACHED) return;
    let drop = Math.ceil(this.cache.size / 2);
    for (const user of this.cache.keys()) {
      if (drop-- <= 0) break;
      this.cache.delete(user);
    }
  }

  private target(): BackendView | undefined {
    const { topology } = this.deps;
    const primary = topology.primary();
    if (primary && primary.state === 'up') return primary;
    return topology.backends().find((v) => v.state === 'up' && !v.fenced);
  }

  private async query(user: string): Promise<Lookup> {
    const auth = this.deps.auth();
    const view = this.target();
    if (!view) throw new AuthLookupError('pgwarden cannot check the password now: no server is up to run auth.query on');
    const { host, port } = view.config;
    const tls = this.deps.tls();
    const connect = async (ssl: ConnectionOptions | false) => {
      const c = new Client({
        host,
        port,
        user: auth.user,
        password: auth.password ?? '',
        database: auth.database,
        // false rather than undefined: pg would otherwise read PGSSLMODE from the environment.
        ssl,
        application_name: 'pgwarden-auth',
        connectionTimeoutMillis: this.deps.timeoutMs(),
        query_timeout: this.deps.timeoutMs(),
      });
      c.on('error', () => undefined);
      client = c;
      await c.connect();
      return c;
    };
    let client: Client | undefined;
    try {
      const ssl = serverLegOptions(tls, host) ?? false;
      await connect(ssl).catch(async (e: unknown) => {
        // tls.server prefer: a server without TLS is asked again in plain text (as the checks do).
        if (ssl === false || tls.server !== 'prefer' || !serverRefusedTls(e)) throw e;
        await client?.end().catch(() => undefined);
        return connect(false);
      });
      const r = await client!.query({ text: auth.query, values: [user], rowMode: 'array' });
      return classify(r.rows[0] as unknown[] | undefined);
    } catch (e) {
      const secret = auth.password;
      const raw = (e as Error).message;
      const msg = secret ? raw.split(secret).join('********') : raw;
      throw new AuthLookupError(`pgwarden cannot check the password now: auth.query as ${auth.user ?? '(no auth.user)'} on ${view.name} (${host}:${port}) failed: ${msg}`);
    } finally {
      await client?.end().catch(() => undefined);
    }
  }
}
