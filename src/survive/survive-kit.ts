// What sessions.survive gives a session: a state tracker of its own, and the ServerLogin for
// each kind of LoginSecret. Both are injected (App options) so that the tracker and the SCRAM /
// md5 logins of auth at the proxy plug in without the mover knowing them; until they do, the
// defaults are the trust login and a tracker that knows nothing (so nothing moves).
import type { LoginSecret, ServerLogin, SessionStateTracker } from './contracts';
import { trustLogin } from './trust-login';

export interface SurviveKit {
  tracker(): SessionStateTracker;
  login(kind: LoginSecret['kind']): ServerLogin | undefined;
}

export interface SurviveOptions {
  /** A new tracker per session (default: UnknownStateTracker, which never lets a session move). */
  readonly tracker?: () => SessionStateTracker;
  /** Logins by secret kind, over the default { trust: trustLogin }. */
  readonly logins?: Partial<Record<LoginSecret['kind'], ServerLogin>>;
}

export function surviveKit(o: SurviveOptions = {}): SurviveKit {
  const logins: Partial<Record<LoginSecret['kind'], ServerLogin>> = { trust: trustLogin, ...o.logins };
  const tracker = o.tracker ?? (() => new UnknownStateTracker());
  return { tracker, login: (kind) => logins[kind] };
}

/** The tracker when none is installed: state unknown, so no session is ever moved (conservative). */
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
