// What the control pieces (reactions, reload, session reporting) need from the running proxy,
// as one narrow interface: App implements it, and no control module imports App (app.ts is the
// layer above control).
import type { Config } from '../config/types';
import type { Bus } from '../events';
import type { Endpoint } from '../hooks/env';
import type { HookRunner } from '../hooks/runner';
import type { Logger } from '../logger';
import type { Session } from '../proxy/session';
import type { Topology } from '../routing/topology';
import type { Timeline } from './timeline';

export interface ControlContext {
  readonly topology: Topology;
  readonly timeline: Timeline;
  readonly bus: Bus;
  readonly log: Logger;
  /** The running config and hook runner: a reload replaces both, so read them each time. */
  readonly config: Config;
  readonly hooks: HookRunner;
  /** Every established or starting session, optionally only those on one backend. */
  sessions(backend?: string): Session[];
  /** Name, host and port of a backend for hook environments; undefined for an unknown name. */
  endpoint(name: string | undefined): Endpoint | undefined;
  /** Cluster-wide hooks (on_fence, on_primary_change) run here: alone, or the cluster's leader. */
  clusterHooksHere(): boolean;
}
