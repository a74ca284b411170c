// The environment a hook command runs with: pgwarden's own environment, then the hook's `env`
// from the configuration, then the documented PGWARDEN_* variables that describe the event.
// The PGWARDEN_* variables are set last so a hook can trust them: neither the configuration nor
// an inherited variable (pgwarden itself started by some other tool's hook) can fake them.
import type { HookEvent } from '../config/types';

/** A server as hooks see it: the configured backend name and its address. */
export interface Endpoint {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/** What the event is about; each present endpoint becomes three PGWARDEN_<ROLE>_* variables. */
export interface HookContext {
  /** The primary before a switchover or failover (may be down; the last one before a no-primary gap). */
  readonly oldPrimary?: Endpoint;
  /** The primary after it; a backup hook copies this one. */
  readonly newPrimary?: Endpoint;
  /** The backend an on_backend_up / on_backend_down / on_fence event is about. */
  readonly backend?: Endpoint;
}

const ENDPOINT_PREFIXES = {
  oldPrimary: 'PGWARDEN_OLD_PRIMARY',
  newPrimary: 'PGWARDEN_NEW_PRIMARY',
  backend: 'PGWARDEN_BACKEND',
} as const satisfies Record<keyof HookContext, string>;

/** Every variable pgwarden may set, for the README and for tests. */
export const HOOK_ENV_VARIABLES: readonly string[] = [
  'PGWARDEN_EVENT',
  'PGWARDEN_TIME',
  ...Object.values(ENDPOINT_PREFIXES).flatMap((p) => [`${p}_NAME`, `${p}_HOST`, `${p}_PORT`]),
];

/**
 * The full environment of one hook run. An endpoint the context lacks leaves its variables
 * unset (not empty), so `${PGWARDEN_OLD_PRIMARY_HOST:?}` in a script fails loudly.
 */
export function hookEnvironment(
  event: HookEvent,
  ctx: HookContext,
  hookEnv: Readonly<Record<string, string>>,
  base: NodeJS.ProcessEnv = process.env,
  now: Date = new Date(),
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) {
    if (value !== undefined) env[key] = value;
  }
  Object.assign(env, hookEnv);
  for (const name of HOOK_ENV_VARIABLES) delete env[name];
  env.PGWARDEN_EVENT = event;
  env.PGWARDEN_TIME = now.toISOString();
  for (const [role, prefix] of Object.entries(ENDPOINT_PREFIXES) as [keyof HookContext, string][]) {
    const endpoint = ctx[role];
    if (endpoint === undefined) continue;
    env[`${prefix}_NAME`] = endpoint.name;
    env[`${prefix}_HOST`] = endpoint.host;
    env[`${prefix}_PORT`] = String(endpoint.port);
  }
  return env;
}
