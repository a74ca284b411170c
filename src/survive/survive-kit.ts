// What sessions.survive gives a session: a state tracker of its own (state-tracker.ts), and the
// ServerLogin for each kind of LoginSecret: SCRAM-SHA-256 and md5 secrets recovered by auth at
// the proxy (server-login.ts), and trust for a server that let the user in without a password.
// Both can be replaced through App options (tests inject a tracker of their own).
import type { LoginSecret, ServerLogin, SessionStateTracker } from './contracts';
import { serverLogin } from './server-login';
import { StateTracker } from './state-tracker';
import { trustLogin } from './trust-login';

export interface SurviveKit {
  tracker(): SessionStateTracker;
  login(kind: LoginSecret['kind']): ServerLogin | undefined;
}

export interface SurviveOptions {
  /** A new tracker per session (default: StateTracker). */
  readonly tracker?: () => SessionStateTracker;
  /** Logins by secret kind, over the default { trust: trustLogin }. */
  readonly logins?: Partial<Record<LoginSecret['kind'], ServerLogin>>;
}

export function surviveKit(o: SurviveOptions = {}): SurviveKit {
  const logins: Partial<Record<LoginSecret['kind'], ServerLogin>> = { trust: trustLogin, 'scram-sha-256': serverLogin, md5: serverLogin, ...o.logins };
  const tracker = o.tracker ?? (() => new StateTracker());
  return { tracker, login: (kind) => logins[kind] };
}

/** A tracker that knows nothing, so no session is ever moved (for tests and a cautious embedder). */
export class UnknownStateTracker implements SessionStateTracker {
  fromClient(): void {}
  fromServer(): void {}
  movable() {
    return { ok: false, reason: 'no session-state tracker is installed' } as const;
  }
  replay() {
    return [];
  }
  parameters(): ReadonlyMap<string, string> {
    return new Map();
  }
}
