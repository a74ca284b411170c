// Builds this instance's Coordinator over etcd from the running proxy's control context.
import { realClock } from '../../clock';
import type { CoordinationConfig } from '../../config/types';
import { EtcdStore } from '../../coordination/etcd-store';
import type { ControlContext } from '../context';
import { Coordinator } from './coordinator';

export function coordinatorFor(settings: CoordinationConfig, ctx: ControlContext, poke: (backend: string, reason: string) => void): Coordinator {
  return new Coordinator({
    settings,
    store: new EtcdStore(settings.etcd),
    topology: ctx.topology,
    timeline: ctx.timeline,
    bus: ctx.bus,
    log: ctx.log,
    clock: realClock,
    // Read through the context: a reload replaces the config and the hook runner.
    config: () => ctx.config,
    hooks: () => ctx.hooks,
    sessionsOn: (backend) => ctx.sessions(backend),
    poke,
    endpoint: (name) => ctx.endpoint(name),
  });
}
