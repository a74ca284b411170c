// How a listener's sessions are reported: each ListenerContext callback becomes a log line, an
// event on the bus (for metrics) and, for a failed or slow connect, a poke that makes the
// backend's health checker look again now.
import type { Bus } from '../events';
import type { Logger } from '../logger';
import type { ListenerContext } from '../proxy/listener-context';

export type SessionReports = Pick<
  ListenerContext,
  | 'onConnectFailure'
  | 'onRedispatch'
  | 'onSlowAnswer'
  | 'onRejected'
  | 'onClientError'
  | 'onSessionStart'
  | 'onSessionEnd'
  | 'onClosedByProxy'
  | 'onCancel'
  | 'onInternalError'
  | 'onMoved'
  | 'onNotMoved'
>;

export interface SessionReportingDeps {
  readonly log: Logger;
  readonly bus: Bus;
  /** Ask a backend's health checker to look now. */
  poke(backend: string, reason: string): void;
  /** Session opened / closed (the quiet-GC timer counts bursts of both). */
  sessionOpened(): void;
  sessionClosed(): void;
}

export function sessionReporting(listener: string, d: SessionReportingDeps): SessionReports {
  const { log, bus } = d;
  return {
    onConnectFailure: (backend, err) => {
      log.warn({ event: 'backend.connect_failed', listener, backend, layer: err.layer, err: err.message }, `connect to ${backend} failed; trying the next candidate`);
      d.poke(backend, `session connect failed: ${err.message}`);
    },
    onRedispatch: (backend, reason) =>
      log.info({ event: 'session.redispatched', listener, backend, reason }, `a session waiting for ${backend} to answer goes back to routing: pgwarden closed it (${reason})`),
    onSlowAnswer: (backend, ms) => {
      // Debug only: in a connection storm every new session of a busy server gets here.
      log.debug({ event: 'backend.slow_answer', listener, backend }, `${backend} accepted a connection and has not answered within ${ms} ms; checking it now`);
      d.poke(backend, `session startup unanswered for ${ms} ms`);
    },
    onRejected: (err) => {
      if (err.code === 'PGW_CLIENT_GONE') return;
      log.warn({ event: 'session.rejected', listener, code: err.code, sqlstate: err.sqlstate }, err.message);
      bus.emit('session.rejected', { listener, sqlstate: err.sqlstate, code: err.code });
    },
    onClientError: (sqlstate, message, code = 'PGW_CLIENT_ERROR') => {
      log.info({ event: 'session.error', listener, sqlstate, code }, message);
      bus.emit('session.rejected', { listener, sqlstate, code });
    },
    onSessionStart: (backend) => {
      d.sessionOpened();
      bus.emit('session.start', { listener, backend });
    },
    onSessionEnd: (end) => {
      d.sessionClosed();
      log.info({ event: 'session.end', listener, ...end }, `session closed: ${end.cause}${end.reason ? ` (${end.reason})` : ''}`);
      bus.emit('session.end', { listener, backend: end.backend, cause: end.cause, ...(end.reason && { reason: end.reason }), durationMs: end.durationMs, bytesFromClient: end.bytesFromClient, bytesToClient: end.bytesToClient });
    },
    onClosedByProxy: (backend, reason, inTransaction) => bus.emit('session.closed_by_proxy', { listener, backend, reason, inTransaction }),
    onCancel: (outcome) => {
      // Debug only: a flood of made-up keys must not become a flood of log lines.
      if (outcome === 'dropped') log.debug({ event: 'cancel.dropped', listener }, 'a CancelRequest with an unknown key was dropped: proxy.unknown_cancel_rate reached');
      bus.emit('cancel.forwarded', { listener, outcome });
    },
    onMoved: (m) => {
      log.info({ event: 'session.moved', listener, ...m }, `an idle session moved from ${m.from} to ${m.to} (${m.trigger}); the client waited ${m.pauseMs} ms`);
      bus.emit('session.moved', { listener, from: m.from, to: m.to, result: 'moved', pauseMs: m.pauseMs });
    },
    onNotMoved: (n) => {
      log.info({ event: 'session.not_moved', listener, ...n }, `a session of ${n.from ?? 'a server'} could not move (${n.trigger}): ${n.reason}; it is closed`);
      bus.emit('session.moved', { listener, from: n.from, result: 'not_moved' });
    },
    onInternalError: (err) => log.error({ event: 'session.internal_error', listener, err }, `internal error in a session, which was closed: ${err.message}`),
  };
}
