// Starts what watches the running proxy from the side — Prometheus metrics, the admin HTTP API
// with its status page, host sampling with thresholds, and agent checks — and returns one
// disposer. Nothing here is on the session hot path.
import type { AdminController } from '../admin/controller';
import type { Config } from '../config/types';
import type { Bus } from '../events';
import type { HostStatus } from '../host/status';
import type { Logger } from '../logger';
import { Metrics } from '../metrics/metrics';
import { AdminServer } from '../admin/server';
import { renderStatusPage } from '../admin/status-page';
import { HostSampler } from '../host/sampler';
import { AgentChecker } from '../health/agent-check';
import type { AgentAdminWord, AgentHealthWord } from '../protocol/agent-reply';
import type { AgentVerdict } from './reactions';

/** What the observers need from the running proxy (App), without importing it. */
export interface ObservedProxy {
  readonly config: Config;
  readonly log: Logger;
  readonly bus: Bus;
  /** Steered by the admin API and read by the metrics gauges. */
  readonly controller: AdminController;
  /** Every host sample, for the status snapshot. */
  onHostSample(sample: HostStatus): void;
  /** Agent reports per backend, for the status page. */
  readonly agentReports: Map<string, { at: number; reachable: boolean; raw?: string }>;
  applyAgentReport(backend: string, r: AgentVerdict, previous: string, raw: string): void;
}

export interface Observability {
  readonly admin?: AdminServer;
  readonly metrics: Metrics;
  readonly host: HostSampler;
  close(): Promise<void>;
}

export async function startObservability(proxy: ObservedProxy): Promise<Observability> {
  const { config, log } = proxy;
  const metrics = new Metrics(proxy.bus, proxy.controller);
  const host = new HostSampler({ interval: config.host.interval, thresholds: config.host.thresholds, bus: proxy.bus, log });
  host.on('sample', (s) => proxy.onHostSample(s));
  // Host samples are read by the admin API (status, status page, /metrics) and by thresholds.
  // With neither configured nobody sees them: no worker thread, no wake-ups every interval.
  const thresholds = config.host.thresholds;
  if (config.admin || Object.values(thresholds ?? {}).some((v) => v !== undefined)) host.start();
  const agents = startAgents(proxy);
  let admin: AdminServer | undefined;
  if (config.admin) {
    admin = new AdminServer({
      host: config.admin.host,
      port: config.admin.port,
      token: config.admin.token,
      controller: proxy.controller,
      metrics,
      log,
      statusPage: renderStatusPage,
      maxReplicaLag: config.health.maxReplicaLag,
    });
    try {
      await admin.listen();
    } catch (e) {
      host.stop();
      for (const a of agents) a.stop();
      metrics.close();
      throw new Error(`admin API cannot bind ${config.admin.host}:${config.admin.port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const a = admin.address();
    log.info({ event: 'admin.ready', address: `${a.address}:${a.port}`, stateChanges: config.admin.token ? 'token' : 'disabled' }, `admin API and status page on http://${a.address}:${a.port}/`);
  }
  return {
    admin,
    metrics,
    host,
    async close() {
      host.stop();
      for (const c of agents) c.stop();
      await admin?.close();
      metrics.close();
    },
  };
}

/**
 * HAProxy agent-check semantics: an unreachable agent or a line without a usable word changes
 * nothing; health words (up/down/…) and admin words (ready/drain/maint) are each sticky until the
 * agent says otherwise; a weight percentage scales the configured weight.
 */
function startAgents(proxy: ObservedProxy): AgentChecker[] {
  const agent = proxy.config.health.agent;
  if (!agent) return [];
  return proxy.config.backends.map((b) => {
    const checker = new AgentChecker({ host: b.host, port: agent.port, interval: agent.interval, timeout: agent.timeout, log: proxy.log });
    let health: AgentHealthWord | undefined;
    let adminWord: AgentAdminWord | undefined;
    let last = 'up';
    checker.on('report', (r) => {
      proxy.agentReports.set(b.name, { at: r.at, reachable: r.reachable, raw: r.raw ?? r.error });
      if (!r.reply) return;
      health = r.reply.health ?? health;
      adminWord = r.reply.admin ?? adminWord;
      const state =
        adminWord === 'maint' ? 'maint' : health === 'down' || health === 'stopped' || health === 'fail' ? 'down' : adminWord === 'drain' ? 'drain' : 'up';
      proxy.applyAgentReport(b.name, { state, weightPercent: r.reply.weightPercent }, last, r.raw ?? '');
      last = state;
    });
    checker.start();
    return checker;
  });
}
