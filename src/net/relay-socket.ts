// The sockets of a session. Two ideas, both about the idle and the busy proxy:
//
// 1. Reads go into one buffer shared by every socket of the process (Node's `onread` option)
//    instead of the default path, where each read allocates a 64 KiB backing store, shrinks it
//    to the bytes read and pushes the chunk through the Readable stream machinery to a 'data'
//    event. A relayed session does nothing with a chunk but write it on, so that machinery is
//    pure overhead on the hot path: measured with pgbench select-only -c 8 through a bare relay,
//    `onread` on both sockets cut proxy CPU per transaction by ~12 % (bench/README.md,
//    "Changes"). One buffer serves all sockets because reads are delivered one at a time on the
//    event loop thread and every chunk is copied out of it before the callback returns (a small
//    copy from Node's buffer pool: cheaper than the allocation it replaces). A write may keep
//    its chunk queued, so it must never point into the shared buffer.
//
// 2. The relay's state (where chunks go, who looks at them, whose reads wait for a drain) and
//    the session that hears 'end', 'close' and 'error' are fields of the socket, and the
//    listeners are shared functions that find them through `this`. Closures would cost every
//    idle session a function and a scope per socket and event, ~1 kB in all (heap snapshots,
//    bench/README.md, "Changes").
//
// Until a relay takes over, chunks are emitted as ordinary 'data' events, so the startup phase
// (first packet, SSL negotiation, startup answers) keeps using the stream API; pause() and
// resume() work as usual (Node stops and restarts the handle's reads for `onread` sockets).
import net from 'node:net';
import { SHARED_READ_BUFFER as SHARED } from './user-buffer-read';

/** Looks at every relayed chunk without keeping it (the frame tracker). */
export interface ChunkWatcher {
  feed(chunk: Buffer): void;
}

/** Hears a socket's 'end', 'close' and 'error' (see RelaySocket.reportTo). */
export interface SocketOwner {
  socketEnded(socket: RelayEnd): void;
  socketClosed(socket: RelayEnd): void;
  socketFailed(socket: RelayEnd, err: NodeJS.ErrnoException): void;
}

/**
 * What a session needs of either end of its relay: a RelaySocket (plain TCP, the hot path), or
 * a TLS socket given the same four methods (net/tls-relay.ts) when pgwarden terminates TLS.
 */
export interface RelayEnd extends net.Socket {
  relayTo(dst: RelayEnd, watcher?: ChunkWatcher): void;
  unrelay(): void;
  holdErrors(): void;
  reportTo(owner: SocketOwner): void;
  /** The socket relaying into this one, whose reads stop while this one is full (set by its relayTo). */
  waitingReader?: net.Socket;
}

export interface RelaySocketOptions extends net.SocketConstructorOpts {
  /** Read into the shared buffer (default); false: Node's default reads and 'data' events. */
  sharedBuffer?: boolean;
  /** Turn Nagle off once connected (as net.connect's option). */
  noDelay?: boolean;
}

export class RelaySocket extends net.Socket implements RelayEnd {
  /** Set by relayTo(): every chunk is written here instead of being emitted as 'data'. */
  private relayDst?: RelayEnd;
  private watcher?: ChunkWatcher;
  /** The socket relaying into this one, whose reads stop while this one is full. */
  waitingReader?: net.Socket;
  private owner?: SocketOwner;
  /** Reads come as 'data' events (no shared buffer): the relay listens for them. */
  private readonly viaData: boolean;

  constructor({ sharedBuffer = true, ...opts }: RelaySocketOptions = {}) {
    // Node's Socket constructor takes `onread` (its types list it only for connect()).
    super(sharedBuffer ? ({ ...opts, onread: RelaySocket.sharedRead } as net.SocketConstructorOpts) : opts);
    this.viaData = !sharedBuffer;
  }

  /**
   * From now on every chunk is written to `dst` as it arrives (no 'data' events), after the
   * watcher's look; reads stop while `dst`'s buffer is full and restart when it drains — what
   * pipe() does, minus its bookkeeping. Remove the socket's own 'data' listeners first: they
   * would not be called any more. Ends are the caller's business.
   */
  relayTo(dst: RelayEnd, watcher?: ChunkWatcher): void {
    this.relayDst = dst;
    this.watcher = watcher;
    dst.waitingReader = this;
    dst.on('drain', RelaySocket.resumeWaitingReader);
    if (this.viaData) this.on('data', RelaySocket.relayData);
    if (!dst.writableNeedDrain) this.resume();
  }

  /** Stop relaying: later chunks are emitted as 'data' (dropped without a listener). */
  unrelay(): void {
    const dst = this.relayDst;
    if (dst === undefined) return;
    this.relayDst = undefined;
    this.watcher = undefined;
    if (this.viaData) this.off('data', RelaySocket.relayData);
    dst.off('drain', RelaySocket.resumeWaitingReader);
    dst.waitingReader = undefined;
  }

  /** Until reportTo(): errors are dropped (an 'error' without a listener would throw). */
  holdErrors(): void {
    this.on('error', RelaySocket.dropError);
  }

  /**
   * Send 'close' and 'error' to `owner` (which thereby handles every 'error'), and 'end' when the
   * socket is half-open capable: one that is not closes itself after 'end', and the owner hears
   * that 'close'.
   */
  reportTo(owner: SocketOwner): void {
    const first = this.owner === undefined;
    this.owner = owner;
    this.off('error', RelaySocket.dropError);
    // Handing the socket to the next owner (a backend attempt, then its session) keeps the listeners.
    if (!first) return;
    if (this.allowHalfOpen) this.on('end', RelaySocket.ended);
    this.on('close', RelaySocket.closed);
    this.on('error', RelaySocket.failed);
  }

  /** A chunk read from the socket: along the relay, or a 'data' event while there is none. */
  private receive(chunk: Buffer): boolean {
    const dst = this.relayDst;
    if (dst === undefined) {
      // A 'data' handler that wants backpressure calls pause(), which stops the reads itself.
      this.emit('data', chunk);
      return true;
    }
    this.watcher?.feed(chunk);
    return dst.write(chunk);
  }

  /** `onread` callback; Node calls it as a method of the socket. False stops the reads. */
  private static readShared(this: RelaySocket, n: number, buf: Uint8Array): boolean {
    const chunk = Buffer.allocUnsafe(n);
    (buf as Buffer).copy(chunk, 0, 0, n);
    return this.receive(chunk);
  }

  /** One options object for every socket (Node copies its two fields onto the socket). */
  private static readonly sharedRead: net.OnReadOpts = { buffer: SHARED, callback: RelaySocket.readShared as net.OnReadOpts['callback'] };

  private static relayData(this: RelaySocket, chunk: Buffer): void {
    if (!this.receive(chunk)) this.pause();
  }

  private static resumeWaitingReader(this: RelayEnd): void {
    this.waitingReader?.resume();
  }

  private static ended(this: RelaySocket): void {
    this.owner?.socketEnded(this);
  }

  private static closed(this: RelaySocket): void {
    this.owner?.socketClosed(this);
  }

  private static failed(this: RelaySocket, err: NodeJS.ErrnoException): void {
    this.owner?.socketFailed(this, err);
  }

  private static dropError(): void {}
}

/** The internals adoptAccepted relies on: an accepted socket's libuv handle. */
interface HandleOwner {
  _handle: { readStart(): number; useUserBuffer?(buf: Uint8Array): void } | null;
}

/**
 * net.Server has no `onread` option and makes plain Sockets, so an accepted socket (created
 * with pauseOnConnect: no read has happened yet) hands its handle over to a RelaySocket. The old
 * object is destroyed without a handle, which only releases the server's connection count. A
 * Node.js whose handles cannot read into a user buffer gets Node's default reads (`sharedBuffer`
 * false); one without `_handle` at all gets undefined (the caller closes the connection).
 */
export function adoptAccepted(socket: net.Socket, allowHalfOpen: boolean, sharedBuffer?: boolean): RelaySocket | undefined {
  const owner = socket as unknown as HandleOwner;
  const handle = owner._handle;
  if (!handle) return undefined;
  owner._handle = null;
  socket.destroy();
  const shared = sharedBuffer ?? typeof handle.useUserBuffer === 'function';
  return new RelaySocket({ handle, allowHalfOpen, readable: true, writable: true, sharedBuffer: shared } as RelaySocketOptions);
}
