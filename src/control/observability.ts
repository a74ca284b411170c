// Starts what watches the running proxy from the side — Prometheus metrics, the admin HTTP API
// with its status page, host sampling with thresholds, and agent checks — and returns one
// disposer. Nothing here is on the session hot path.
import type { App } from '../app';
import { Metrics } from '../metrics/metrics';
import { AdminServer } from '../admin/server';
import { renderStatusPage } from '../admin/status-page';
import { HostSampler } from '../host/sampler';
import { AgentChecker } from '../health/agent-check';
import type { AgentAdminWord, AgentHealthWord } from '../protocol/agent-reply';

export interface Observability {
  readonly admin?: AdminServer;
  readonly metrics: Metrics;
  readonly host: HostSampler;
  close(): Promise<void>;
}

export async function startObservability(app: App): Promise<Observability> {
  const { config, log } = app;
  const metrics = new Metrics(app.bus, app);
  const host = new HostSampler({ interval: config.host.interval, thresholds: config.host.thresholds, bus: app.bus, log });
  host.on('sample', (s) => (app.hostStatus = s));
  // Host samples are read by the admin API (status, status page, /metrics) and by thresholds.
  // With neither configured nobody sees them: no worker thread, no wake-ups every interval.
  const thresholds = config.host.thresholds;
  if (config.admin || Object.values(thresholds ?? {}).some((v) => v !== undefined)) host.start();
  const agents = startAgents(app);
  let admin: AdminServer | undefined;
  if (config.admin) {
    admin = new AdminServer({
      host: config.admin.host,
      port: config.admin.port,
      token: config.admin.token,
      controller: app,
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
function startAgents(app: App): AgentChecker[] {
  const agent = app.config.health.agent;
  if (!agent) return [];
  return app.config.backends.map((b) => {
    const checker = new AgentChecker({ host: b.host, port: agent.port, interval: agent.interval, timeout: agent.timeout, log: app.log });
    let health: AgentHealthWord | undefined;
    let adminWord: AgentAdminWord | undefined;
    let last = 'up';
    checker.on('report', (r) => {
      app.agentReports.set(b.name, { at: r.at, reachable: r.reachable, raw: r.raw ?? r.error });
      if (!r.reply) return;
      health = r.reply.health ?? health;
      adminWord = r.reply.admin ?? adminWord;
      const state =
        adminWord === 'maint' ? 'maint' : health === 'down' || health === 'stopped' || health === 'fail' ? 'down' : adminWord === 'drain' ? 'drain' : 'up';
      app.applyAgentReport(b.name, { state, weightPercent: r.reply.weightPercent }, last, r.raw ?? '');
      last = state;
    });
    checker.start();
    return checker;
  });
}
