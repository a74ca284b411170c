// The client side of HAProxy's agent-check: every `interval`, connect to the agent on the
// database host, read one line (bounded in size and time), parse it and emit 'report'.
//
// Semantics (as HAProxy): the agent only ever *adjusts* a backend. A report without a usable
// `reply` — agent unreachable (reachable: false), timed out, closed before a complete line, line
// too long (reachable: true, `error` says which) — changes nothing: the caller keeps the state and
// weight it last applied; connectivity is the regular health check's business, not the agent's.
// A complete line is always parsed; the caller applies only the fields it carries (a garbage line
// has none: see isActionable()). The admin word is sticky: `drain` holds until `ready`/`maint`.
//
// Invariants: at most one check in flight; the next is scheduled after the previous settled;
// every timer is kept, unref()'d and cleared by stop(); nothing throws into the caller.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { parseAgentReply, type ParsedReply } from '../protocol/agent-reply';
import type { Logger } from '../logger';
import { realClock, type Clock } from '../clock';

/** HAProxy reads the agent's reply into one buffer; a line longer than this is not an agent. */
export const MAX_AGENT_LINE_BYTES = 1024;

export interface AgentReport {
  /** Clock time the check settled. */
  readonly at: number;
  /** The agent accepted the TCP connection. */
  readonly reachable: boolean;
  /** Present when a complete line was read. */
  readonly reply?: ParsedReply;
  /** The line as read, without its terminator. */
  readonly raw?: string;
  /** Why there is no reply: refused, timeout, closed early, too long. */
  readonly error?: string;
}

export interface AgentCheckerOptions {
  readonly host: string;
  readonly port: number;
  readonly interval: number;
  /** Connect + read must finish within this many ms. */
  readonly timeout: number;
  readonly clock?: Clock;
  readonly log?: Logger;
}

export interface AgentChecker {
  on(event: 'report', listener: (report: AgentReport) => void): this;
  once(event: 'report', listener: (report: AgentReport) => void): this;
}

export class AgentChecker extends EventEmitter {
  private readonly opts: AgentCheckerOptions;
  private readonly clock: Clock;
  private timer?: { clear(): void };
  private running = false;
  private inFlight?: net.Socket;
  private current?: AgentReport;

  constructor(opts: AgentCheckerOptions) {
    super();
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
  }

  get last(): AgentReport | undefined {
    return this.current;
  }

  /** Checks now, then every `interval` after the previous check settled. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.checkNow();
  }

  /** Idempotent; a check in flight is abandoned without a report. */
  stop(): void {
    this.running = false;
    this.timer?.clear();
    this.timer = undefined;
    this.inFlight?.destroy();
    this.inFlight = undefined;
  }

  private checkNow(): void {
    if (!this.running || this.inFlight) return;
    const { host, port, timeout } = this.opts;
    const socket = new net.Socket();
    this.inFlight = socket;
    let connected = false;
    let settled = false;
    let received = Buffer.alloc(0);

    const finish = (report: Omit<AgentReport, 'at' | 'reachable'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      socket.destroy();
      if (this.inFlight === socket) this.inFlight = undefined;
      if (!this.running) return;
      this.settle({ at: this.clock.now(), reachable: connected, ...report });
    };

    const deadline = setTimeout(() => {
      finish({ error: connected ? `agent ${host}:${port} sent no complete line within ${timeout} ms` : `connect to agent ${host}:${port} timed out after ${timeout} ms` });
    }, timeout);
    deadline.unref();

    socket.on('connect', () => {
      connected = true;
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = lineEnd(received);
      if (end !== -1) {
        const raw = received.subarray(0, end).toString('latin1');
        return finish({ reply: parseAgentReply(raw), raw });
      }
      if (received.length > MAX_AGENT_LINE_BYTES) finish({ error: `agent ${host}:${port} sent more than ${MAX_AGENT_LINE_BYTES} bytes without a line end` });
    });
    // An incomplete line is ignored as a whole, as HAProxy does ("Ignoring incomplete line").
    socket.on('end', () => finish({ error: `agent ${host}:${port} closed the connection before a complete line` }));
    socket.on('close', () => finish({ error: `agent ${host}:${port} closed the connection before a complete line` }));
    socket.on('error', (err: NodeJS.ErrnoException) => finish({ error: `agent ${host}:${port}: ${err.message}` }));
    socket.connect({ host, port });
  }

  private settle(report: AgentReport): void {
    this.current = report;
    if (report.reply === undefined) this.opts.log?.debug({ event: 'agent.check_failed', host: this.opts.host, port: this.opts.port, reachable: report.reachable, error: report.error }, 'agent check got no reply');
    try {
      this.emit('report', report);
    } catch (err) {
      this.opts.log?.debug({ event: 'agent.report_listener_failed', err: String(err) }, 'an agent report listener threw');
    }
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.checkNow();
    }, this.opts.interval);
  }
}

/** Index of the first CR or LF, or -1. */
function lineEnd(buffer: Buffer): number {
  for (let i = 0; i < buffer.length; i++) if (buffer[i] === 0x0a || buffer[i] === 0x0d) return i;
  return -1;
}
