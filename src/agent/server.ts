// `pgwarden agent`: a tiny TCP server on a database host that answers every connection with one
// HAProxy agent-check line (see report.ts) computed from this host's latest metrics sample, then
// closes. Bounded: at most MAX_CONNECTIONS at once, and a peer that never reads or never closes
// its side is cut after CONNECTION_TIMEOUT_MS.
import net from 'node:net';
import type { Logger } from '../logger';
import { HostSampler, type HostSampleSource } from '../host/sampler';
import type { HostThresholds } from '../host/thresholds';
import { buildAgentReply } from './report';

export const CONNECTION_TIMEOUT_MS = 2000;
export const MAX_CONNECTIONS = 256;
/** listen() waits this long for the first sample so the first replies carry real readings. */
export const FIRST_SAMPLE_WAIT_MS = 5000;
export const DEFAULT_AGENT_INTERVAL_MS = 2000;

/**
 * Sent while no sample exists yet (or the sampler keeps failing): a comment alone carries no
 * state word, so HAProxy (and AgentChecker users) keep whatever state they had.
 */
export const NO_SAMPLE_REPLY = '#no host sample yet\n';

export interface AgentServerOptions {
  readonly host: string;
  readonly port: number;
  readonly thresholds: HostThresholds;
  /** Host sampling interval (ms). */
  readonly interval: number;
  readonly log: Logger;
  /** Readings source for the sampler (tests); systeminformation by default. */
  readonly source?: HostSampleSource;
}

export class AgentServer {
  private readonly opts: AgentServerOptions;
  private readonly sampler: HostSampler;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private closing?: Promise<void>;

  constructor(opts: AgentServerOptions) {
    this.opts = opts;
    this.sampler = new HostSampler({ interval: opts.interval, thresholds: opts.thresholds, log: opts.log, source: opts.source });
    this.server = net.createServer((socket) => this.answer(socket));
    this.server.maxConnections = MAX_CONNECTIONS;
    // Bind errors reject listen(); only errors of a listening server are news here.
    this.server.on('error', (err) => {
      if (this.server.listening) opts.log.error({ event: 'agent.error', err: err.message }, 'agent server error');
    });
  }

  /** The line a connection would get right now. */
  reply(): string {
    const latest = this.sampler.latest;
    return latest === undefined ? NO_SAMPLE_REPLY : buildAgentReply(latest, this.opts.thresholds);
  }

  /** Starts sampling, waits (bounded) for the first sample, then listens. Rejects on bind errors. */
  async listen(): Promise<void> {
    this.sampler.start();
    await this.firstSample();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: this.opts.host, port: this.opts.port }, () => {
        this.server.off('error', onError);
        resolve();
      });
    }).catch((err: unknown) => {
      this.sampler.stop();
      throw err;
    });
    const address = this.address();
    this.opts.log.info({ event: 'agent.listening', host: address.address, port: address.port }, `agent listening on ${address.address}:${address.port}`);
  }

  address(): net.AddressInfo {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('agent server is not listening');
    return address;
  }

  /** Connections currently open (answered, not yet closed by the peer or the timeout). */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Stops sampling, stops listening and cuts open connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.sampler.stop();
      for (const socket of this.sockets) socket.destroy();
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    return this.closing;
  }

  private answer(socket: net.Socket): void {
    this.sockets.add(socket);
    // ECONNRESET/EPIPE from a checker that went away is normal here.
    socket.on('error', (err) => this.opts.log.debug({ event: 'agent.socket_error', err: err.message }, 'agent connection error'));
    socket.on('close', () => this.sockets.delete(socket));
    socket.setTimeout(CONNECTION_TIMEOUT_MS, () => socket.destroy());
    // HAProxy may send something first (agent-send); we answer regardless and ignore it.
    socket.resume();
    socket.end(this.reply());
  }

  private firstSample(): Promise<void> {
    if (this.sampler.latest !== undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sampler.off('sample', done);
        resolve();
      };
      const timer = setTimeout(done, FIRST_SAMPLE_WAIT_MS);
      timer.unref();
      this.sampler.once('sample', done);
    });
  }
}

/** "0.0.0.0:5555", "[::]:5555", ":5555" or "5555" → host and port. Throws on anything else. */
export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:\s]*)):(\d+)$/.exec(listen) ?? /^()()(\d+)$/.exec(listen);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`invalid --listen ${JSON.stringify(listen)}: expected host:port, e.g. 0.0.0.0:5555`);
  }
  return { host: match[1] || match[2] || '0.0.0.0', port };
}

/**
 * `pgwarden agent --listen host:port`: runs until SIGTERM or SIGINT, then exits 0; returns 1 when
 * it cannot listen (bad address, port in use).
 */
export async function runAgent(listen: string, thresholds: HostThresholds, log: Logger, interval = DEFAULT_AGENT_INTERVAL_MS): Promise<number> {
  let server: AgentServer;
  try {
    const { host, port } = parseListen(listen);
    server = new AgentServer({ host, port, thresholds, interval, log });
    await server.listen();
  } catch (err) {
    log.error({ event: 'agent.listen_failed', listen, err: (err as Error).message }, `agent cannot listen on ${listen}: ${(err as Error).message}`);
    return 1;
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (name: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(name);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  log.info({ event: 'agent.stopping', signal }, `agent stopping on ${signal}`);
  await server.close();
  return 0;
}
