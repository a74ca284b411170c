// Session sockets read into one buffer shared by every socket of the process (Node's `onread`
// option) instead of the default path, where each read allocates a 64 KiB backing store,
// shrinks it to the bytes read and pushes the chunk through the Readable stream machinery to a
// 'data' event. A relayed session does nothing with a chunk but write it on, so that machinery
// is pure overhead on the hot path: measured with pgbench select-only -c 8 through a bare relay,
// `onread` on both sockets cut proxy CPU per transaction by ~12 % (bench/README.md, "Changes").
//
// One buffer serves all sockets because reads are delivered one at a time on the event loop
// thread and every chunk is copied out of it before the callback returns (a small copy from
// Node's buffer pool: cheaper than the allocation it replaces). A write may keep its chunk
// queued, so it must never point into the shared buffer.
//
// Until a relay takes over, chunks are emitted as ordinary 'data' events, so the startup phase
// (first packet, SSL negotiation, startup answers) keeps using the stream API; pause() and
// resume() work as usual (Node stops and restarts the handle's reads for `onread` sockets).
import net from 'node:net';

const SHARED = Buffer.allocUnsafe(64 * 1024);

export class SharedReader {
  private socket?: net.Socket;
  /** Set by relayTo(): takes each chunk, false stops the reads until the destination drains. */
  private sink?: (chunk: Buffer) => boolean;
  /** The socket reads through Node's default path (see adoptAccepted's fallback). */
  private native = false;

  /** Pass as `onread` when creating the socket, then bind() the socket. */
  readonly onread: net.OnReadOpts = { buffer: SHARED, callback: (n, buf) => this.deliver(n, buf as Buffer) };

  bind(socket: net.Socket, native = false): net.Socket {
    this.socket = socket;
    this.native = native;
    return socket;
  }

  /**
   * From now on every chunk is written to `dst` as it arrives (no 'data' events), after an
   * optional look (the frame tracker); reads stop while `dst`'s buffer is full and restart when
   * it drains — what pipe() does, minus its bookkeeping. Remove the socket's 'data' listeners
   * first: they would not be called any more. Ends are the caller's business.
   */
  relayTo(dst: net.Socket, look?: (chunk: Buffer) => void): void {
    const src = this.socket!;
    const sink = look
      ? (chunk: Buffer) => {
          look(chunk);
          return dst.write(chunk);
        }
      : (chunk: Buffer) => dst.write(chunk);
    this.sink = sink;
    if (this.native) {
      src.on('data', (chunk: Buffer) => {
        if (!sink(chunk)) src.pause();
      });
    }
    dst.on('drain', () => src.resume());
    if (!dst.writableNeedDrain) src.resume();
  }

  private deliver(n: number, buf: Buffer): boolean {
    const chunk = Buffer.allocUnsafe(n);
    buf.copy(chunk, 0, 0, n);
    if (this.sink) return this.sink(chunk);
    // A 'data' handler that wants backpressure calls pause(), which stops the reads itself.
    this.socket!.emit('data', chunk);
    return true;
  }
}

/** The internals adoptAccepted relies on: an accepted socket's libuv handle. */
interface HandleOwner {
  _handle: { readStart(): number; useUserBuffer?(buf: Uint8Array): void } | null;
}

/**
 * net.Server has no `onread` option, so an accepted socket (created with pauseOnConnect: no
 * read has happened yet) hands its handle over to a new Socket that has one. The old object is
 * destroyed without a handle, which only releases the server's connection count. Should a future
 * Node.js not expose the handle this way, the socket is used as it is, reading the default way.
 */
export function adoptAccepted(socket: net.Socket, reader: SharedReader, allowHalfOpen: boolean): net.Socket {
  const owner = socket as unknown as HandleOwner;
  const handle = owner._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function') {
    reader.bind(socket, true);
    socket.resume();
    return socket;
  }
  owner._handle = null;
  socket.destroy();
  const adopted = new net.Socket({ handle, allowHalfOpen, readable: true, writable: true, onread: reader.onread } as net.SocketConstructorOpts);
  return reader.bind(adopted);
}
