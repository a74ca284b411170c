// sessions.survive (issue 19 point 2): the part of a session that lets it outlive its server.
// With survive on, both directions are cut into whole messages for the session's state tracker
// (survive/message-tap.ts) and the server's goodbye (a FATAL before it closes) is held back
// (survive/server-relay.ts). When the server goes away — pgwarden closes it (down, fenced,
// switchover, maint, patroni) or its socket dies — and the session is idle, movable and has a
// LoginSecret, the client is not closed: it is paused, the old server socket is destroyed, and
// the mover (survive/session-mover.ts) finds, logs in to and rebuilds a new server for the same
// route; then the client learns only the ParameterStatus values that differ, its cancel key is
// pointed at the new server, and relaying resumes with whatever the client sent meanwhile.
// A session that cannot move is closed as without survive, with a session.not_moved log line.
// Survive off: none of this runs; the relay is the plain pipe with its header trackers.
import type { ChunkWatcher, RelayEnd } from '../net/relay-socket';
import { parameterStatusMessage } from '../protocol/frontend-messages';
import { SqlState } from '../errors';
import type { LoginSecret, SessionStateTracker, StartupParams } from '../survive/contracts';
import { MessageTap } from '../survive/message-tap';
import { ServerRelay } from '../survive/server-relay';
import { moveSession, type MoveResult } from './session-mover';
import { trustedAtStartup } from '../survive/trust-at-startup';
import type { CloseReason } from './close-reason';
import type { MessageBoundaries } from './boundaries';
import { SessionLifecycle } from './session-lifecycle';

/** Why pgwarden closes a server's sessions where a move makes sense (not shutdown, not reload). */
const MOVE_REASONS: ReadonlySet<CloseReason> = new Set<CloseReason>(['down', 'fenced', 'switchover', 'maint', 'patroni']);

/**
 * A server's goodbyes that mean "this server is going away": admin shutdown (and postmaster
 * exit), crash shutdown, cannot connect now. Any other FATAL ended this session for a reason of
 * its own (idle_session_timeout 57P05, a protocol violation …): moving it would undo that.
 */
const GOODBYES_TO_MOVE_FROM: ReadonlySet<string | undefined> = new Set(['57P01', '57P02', '57P03']);

/** PasswordMessage / SASLResponse / GSSResponse: never given to the tracker. */
const PASSWORD = 0x70; // 'p'

/** Client bytes kept while a move is under way (the client's reads are paused; this is what was already on its way). */
const MAX_HELD_CLIENT_BYTES = 1 << 20;

interface Survival {
  readonly tracker: SessionStateTracker;
  readonly client: MessageTap;
  readonly server: MessageTap;
  relay?: ServerRelay;
}

export abstract class MovableSession extends SessionLifecycle {
  /**
   * What logs this session's user in again on another server. Set by authentication at the proxy
   * (auth.mode: proxy); until then, {kind: 'trust'} when the server let the user in without
   * asking anything (trustedAtStartup).
   */
  loginSecret?: LoginSecret;
  /** The client's StartupMessage parameters, sent again by every login as this user. */
  startupParams?: StartupParams;
  private survival?: Survival;
  private heldClient: Buffer[] = [];
  private heldClientBytes = 0;

  /**
   * The watchers of both directions from the startup on: the header trackers, or with survive on
   * the taps that also feed the session's tracker. `answer`: the server's first startup answer.
   */
  protected watchers(b: MessageBoundaries, answer: Buffer): { client: ChunkWatcher; server: ChunkWatcher } {
    const kit = this.ctx.survive();
    if (!kit) return b;
    const tracker = kit.tracker();
    if (this.loginSecret === undefined && trustedAtStartup(answer)) this.loginSecret = { kind: 'trust' };
    const client = new MessageTap(b.client, (type, body) => type !== PASSWORD && tracker.fromClient(type, body), 'client');
    const server = new MessageTap(
      b.server,
      (type, body, start) => {
        tracker.fromServer(type, body);
        this.survival?.relay?.seen(type, body, start);
      },
      'server',
    );
    this.survival = { tracker, client, server };
    return { client, server };
  }

  /** Startup done (phase relaying): server→client from here on. */
  protected relayServer(backend: RelayEnd): void {
    const s = this.survival;
    if (!s) return backend.relayTo(this.client, this.boundaries!.server);
    const relay = (s.relay = new ServerRelay(backend, this.client, s.server));
    relay.start();
    this.exitPhase = () => relay.stop();
  }

  /**
   * closeAtBoundary's hook: pgwarden takes the server away for `reason`. True when the session
   * is moving instead (or already was); false: close it as without survive.
   */
  protected override moveInsteadOfClose(reason: CloseReason): boolean {
    if (this.phase === 'moving') return reason !== 'shutdown';
    if (!MOVE_REASONS.has(reason)) return false;
    return this.tryMove(reason);
  }

  /**
   * Taken away now for `reason`, this session would move rather than close (survive on, the
   * reason one that moves, idle, movable): a drain need not wait for a quiet moment.
   */
  wouldMoveFor(reason: CloseReason): boolean {
    const s = this.survival;
    return s !== undefined && this.phase === 'relaying' && MOVE_REASONS.has(reason) && this.cannotMove(s) === undefined;
  }

  /** The server socket closed or failed while relaying. True when the session moves instead of ending. */
  protected override moveWhenServerGone(): boolean {
    const goodbye = this.survival?.relay?.holding ? this.survival.relay.goodbye : undefined;
    if (goodbye && !GOODBYES_TO_MOVE_FROM.has(goodbye.code)) {
      const reason = `the server ended the session itself (${goodbye.code ?? '?'} ${goodbye.message ?? ''})`.trim();
      this.ctx.onNotMoved({ client: this.clientAddress, user: this.user, database: this.database, from: this.target?.name, trigger: 'server-gone', reason });
    } else if (this.tryMove('server-gone', goodbye && `${goodbye.code ?? '?'} ${goodbye.message ?? ''}`.trim())) return true;
    // Not moving: the server's goodbye, held back, reaches the client before the close.
    this.survival?.relay?.release();
    return false;
  }

  /** `serverSaid`: for server-gone, the goodbye the server sent (SQLSTATE and message), for the session.moved line. */
  private tryMove(trigger: string, serverSaid?: string): boolean {
    const s = this.survival;
    if (!s || this.phase !== 'relaying') return false;
    const why = this.cannotMove(s);
    if (why !== undefined) {
      this.ctx.onNotMoved({ client: this.clientAddress, user: this.user, database: this.database, from: this.target?.name, trigger, reason: why });
      return false;
    }
    this.beginMove(s, trigger, serverSaid);
    return true;
  }

  /** Why this session cannot move now; undefined when it can. */
  private cannotMove(s: Survival): string | undefined {
    if (this.clientEnded) return 'the client is closing the connection';
    if (!this.boundaries!.isIdle) return this.inTransaction ? 'inside a transaction' : 'a request was in flight';
    if (!this.loginSecret) return 'pgwarden cannot log the user in again (the server authenticated the client: needs auth.mode proxy)';
    if (!this.ctx.survive()?.login(this.loginSecret.kind)) return `no login for a ${this.loginSecret.kind} secret`;
    if (this.startupParams?.has('replication')) return 'a replication connection';
    const lost = s.client.lost ?? s.server.lost;
    if (lost) return lost;
    const m = s.tracker.movable();
    return m.ok ? undefined : m.reason;
  }

  private beginMove(s: Survival, trigger: string, serverSaid: string | undefined): void {
    const from = this.target!.name;
    const started = this.ctx.clock.now();
    this.transition('moving'); // stops the server relay (its exitPhase)
    // The client waits: its reads stop, and what was already on its way is kept for the new server.
    this.client.pause();
    this.client.unrelay();
    this.client.on('data', this.holdClientBytes);
    const old = this.backend!;
    old.unrelay();
    this.releaseBackend();
    old.destroy();
    // No longer a session of `from` (a drain waiting for its sessions is done with this one).
    this.target = undefined;
    const kit = this.ctx.survive()!;
    const { ctx } = this;
    const move = moveSession(
      { params: this.startupParams ?? new Map(), secret: this.loginSecret!, tracker: s.tracker },
      {
        clock: ctx.clock,
        acquire: (exclude, deadline, signal) => ctx.router.acquire(exclude, deadline, signal),
        releaseSlot: (backend) => ctx.startups.release(backend),
        serverTlsOptions: (host) => ctx.serverTlsOptions(host),
        login: (kind) => kit.login(kind),
        onConnectFailure: (backend, err) => ctx.onConnectFailure(backend, err),
        queueTimeoutMs: ctx.failover.queueTimeout,
        connectTimeoutMs: ctx.proxy.connectTimeout,
        startupTimeoutMs: ctx.proxy.startupTimeout,
        userTimeoutMs: ctx.health.timeout * ctx.health.fall,
        failureWindowMs: ctx.health.fastInterval * 4,
      },
    );
    this.exitPhase = () => {
      move.abort();
      this.client.off('data', this.holdClientBytes);
    };
    move.done.then(
      (r) => this.guard(() => this.moved(s, r, { from, trigger, started, serverSaid }), undefined),
      (err: Error) => this.guard(() => this.notMoved(s, err, from, trigger), undefined),
    );
  }

  private readonly holdClientBytes = (chunk: Buffer): void => {
    this.heldClient.push(chunk);
    this.heldClientBytes += chunk.length;
    if (this.heldClientBytes > MAX_HELD_CLIENT_BYTES) this.client.pause();
  };

  private moved(s: Survival, r: MoveResult, how: { from: string; trigger: string; started: number; serverSaid: string | undefined }): void {
    if (this.phase !== 'moving') return void r.socket.destroy();
    const { view, socket } = r;
    this.target = view;
    this.backend = socket;
    this.ctx.topology.sessionOpened(view.name);
    this.counted = true;
    socket.reportTo(this);
    // The client learns what differs (server_version, in_hot_standby …), as the server would tell it.
    for (const [name, value] of r.changed) {
      const message = parameterStatusMessage(name, value);
      s.server.feed(message);
      this.client.write(message);
    }
    // The client keeps the key it was given; a CancelRequest with it now reaches the new server.
    if (this.key) this.ctx.cancels.add(this.key, { backend: view.name, host: view.config.host, port: view.config.port, serverKey: { processId: r.login.processId, secretKey: r.login.secretKey } });
    this.transition('relaying'); // aborts nothing: the move is done
    this.client.off('data', this.holdClientBytes);
    const early = Buffer.concat(this.heldClient);
    this.heldClient = [];
    this.heldClientBytes = 0;
    if (early.length > 0) {
      s.client.feed(early);
      socket.write(early);
    }
    this.client.relayTo(socket, s.client);
    this.relayServer(socket);
    const { from, trigger, started, serverSaid } = how;
    this.ctx.onMoved({ client: this.clientAddress, user: this.user, database: this.database, from, to: view.name, trigger, pauseMs: this.ctx.clock.now() - started, ...(serverSaid && { serverSaid }) });
  }

  private notMoved(s: Survival, err: Error, from: string, trigger: string): void {
    if (this.phase !== 'moving') return;
    this.ctx.onNotMoved({ client: this.clientAddress, user: this.user, database: this.database, from, trigger, reason: err.message });
    const relay = s.relay;
    if (relay?.holding) {
      // The server's own goodbye says why better than pgwarden can.
      relay.release();
      return this.end('server-closed', { flush: true, detail: `not moved: ${err.message}` });
    }
    const message = `terminating connection: server ${from} went away and the session could not be moved to another server (${err.message}); reconnect to continue`;
    const error = { sqlstate: SqlState.ADMIN_SHUTDOWN, message };
    if (trigger === 'server-gone') return this.end('server-closed', { error, detail: `not moved: ${err.message}` });
    const reason = trigger as CloseReason;
    this.ctx.onClosedByProxy(from, reason, false);
    this.end('drained', { reason, error, detail: `not moved: ${err.message}` });
  }
}
