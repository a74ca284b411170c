// When a change of the primary counts for the `on_primary_change` hooks, and what they are told.
//
// Fed every primary the Topology reports (its 'primary' event, after a followed failover, after
// pgwarden's own promotion, during a planned switchover — the one place every change of the
// server that takes writes passes through), it answers "this is a change from A to B" at most
// once per change:
// - the first primary pgwarden ever sees is not a change (there is no old primary: an operator
//   who asked for "change" does not want a backup at every start of pgwarden);
// - "no primary" is a gap, not a change: the old primary of the next change is the last primary
//   before the gap, even if it is down or was removed by a reload since;
// - the same server coming back after a gap (a restart, a network blip) is not a change;
// - a planned switchover is one change, seen here when the checks find the promoted target; the
//   switchover's own completion does not report it again (it runs post_switchover/on_promote).
// A server is known by its backend name; its address is remembered as it was while it was primary.
import type { Endpoint, HookContext } from '../hooks/env';

export interface PrimaryChange extends HookContext {
  readonly oldPrimary: Endpoint;
  readonly newPrimary: Endpoint;
}

export class PrimaryChangeTracker {
  #last: Endpoint | undefined;

  /** The primary pgwarden routes writes to now (undefined: none). Returns the change, if it is one. */
  observe(primary: Endpoint | undefined): PrimaryChange | undefined {
    if (primary === undefined) return undefined;
    const old = this.#last;
    this.#last = primary;
    if (old === undefined || old.name === primary.name) return undefined;
    return { oldPrimary: old, newPrimary: primary };
  }

  /** The last primary seen (the old primary of the next change). */
  get last(): Endpoint | undefined {
    return this.#last;
  }
}
