// What coordination needs from the running proxy, as one narrow interface (App provides it).
import type { Clock } from '../../clock';
import type { Config, CoordinationConfig } from '../../config/types';
import type { CoordinationStore } from '../../coordination/store';
import type { Bus } from '../../events';
import type { Endpoint } from '../../hooks/env';
import type { HookRunner } from '../../hooks/runner';
import type { Logger } from '../../logger';
import type { Session } from '../../proxy/session';
import type { Topology } from '../../routing/topology';
import type { Timeline } from '../timeline';

export interface CoordinationDeps {
  readonly settings: CoordinationConfig;
  readonly store: CoordinationStore;
  readonly topology: Topology;
  readonly timeline: Timeline;
  readonly bus: Bus;
  readonly log: Logger;
  readonly clock: Clock;
  /** The running config and hooks (a reload replaces both). */
  config(): Config;
  hooks(): HookRunner;
  sessionsOn(backend: string): Session[];
  /** Look at a backend again now. */
  poke(backend: string, reason: string): void;
  endpoint(name: string | undefined): Endpoint | undefined;
}
