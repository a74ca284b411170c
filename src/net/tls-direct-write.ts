// Relayed chunks written straight to a TLS socket's handle, past the Writable stream.
//
// Why: Node's TLSWrap completes every write asynchronously — even when the encrypted bytes went
// out in the same call, it schedules an immediate that calls the request's `oncomplete`, which
// for a stream write runs onWriteComplete, the Writable's onwrite/afterWrite bookkeeping and the
// write callback. A relay writes one chunk per server answer, so that machinery is paid per
// transaction. Here a chunk written while the socket has nothing else in flight goes to the
// handle with a bare WriteWrap whose `oncomplete` only clears it (bench/README.md, "Why
// pgwarden's TLS costs more", for what it saves).
//
// The rule this rests on: a TLSWrap takes one write at a time (a second one while the first is
// in flight fails a CHECK and aborts the process). So a chunk goes direct only when the Writable
// has nothing queued or in flight (writableLength 0) and no direct write is in flight; otherwise
// it goes through write() as before. And every write the Writable itself would start while a
// direct one is in flight — its _write, _writev, and _final (TLS close_notify, then shutdown) —
// is held and started when the direct write completes, so bytes keep their order and the stream
// never starts a second write on the handle.
//
// Backpressure: at most one direct chunk is in flight (a read's worth, ≤ 64 KiB); one as large
// as the stream's highWaterMark stops the relay's reads (false, as write() would) until it is
// written, and later chunks queue in the Writable, whose limits and 'drain' apply as before.
// Bytes written directly count in socket.bytesWritten (the handle counts them).
//
// WriteWrap comes from Node's stream_wrap binding (process.binding: allowed, documented as
// deprecated); a Node.js without it, or whose TLS handle has no writeBuffer, keeps write().
import tls from 'node:tls';
import { getSystemErrorName } from 'node:util';

interface StreamWrapBinding {
  WriteWrap: new () => DirectReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

interface TlsHandle {
  writeBuffer(req: DirectReq, chunk: Buffer): number;
}

interface DirectReq {
  handle: TlsHandle;
  oncomplete: (this: DirectReq, status: number) => void;
  buffer: Buffer | null;
  socket: DirectWriteSocket;
}

type WriteCallback = (err?: Error | null) => void;

interface DirectWriteState {
  directWrites?: boolean;
  /** The direct write in flight. */
  directReq?: DirectReq;
  /** A write or shutdown the Writable started while the direct write was in flight. */
  directHeld?: () => void;
  /** The relay's reads stopped for the direct write (a chunk ≥ highWaterMark). */
  directStopped?: boolean;
  /** The socket relaying into this one (RelayEnd.waitingReader). */
  waitingReader?: { resume(): unknown };
}

type DirectWriteSocket = tls.TLSSocket &
  DirectWriteState & {
    _handle: TlsHandle | null;
    _write(chunk: Buffer, encoding: BufferEncoding, cb: WriteCallback): void;
    _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, cb: WriteCallback): void;
    _final(cb: WriteCallback): void;
  };

const binding = streamWrap();

function streamWrap(): StreamWrapBinding | undefined {
  try {
    const b = (process as unknown as { binding(name: string): Partial<StreamWrapBinding> }).binding('stream_wrap');
    if (typeof b.WriteWrap !== 'function' || !(b.streamBaseState instanceof Int32Array) || typeof b.kLastWriteWasAsync !== 'number') return undefined;
    return b as StreamWrapBinding;
  } catch {
    return undefined;
  }
}

const proto = tls.TLSSocket.prototype as unknown as DirectWriteSocket;
const streamWrite = proto._write;
const streamWritev = proto._writev;
const streamFinal = proto._final;

/** Let relayWrite() write `socket`'s chunks directly (idempotent). False where this Node.js cannot. */
export function enableDirectWrites(socket: tls.TLSSocket): boolean {
  const s = socket as DirectWriteSocket;
  if (s.directWrites) return true;
  if (binding === undefined || typeof s._handle?.writeBuffer !== 'function') return false;
  s.directWrites = true;
  s._write = heldWrite;
  s._writev = heldWritev;
  s._final = heldFinal;
  return true;
}

/** Write a relayed chunk (never one that may be reused: a write may keep it); false: stop reading until the socket can take more. */
export function relayWrite(socket: tls.TLSSocket, chunk: Buffer): boolean {
  const s = socket as DirectWriteSocket;
  const handle = s._handle;
  if (!s.directWrites || s.directReq !== undefined || handle === null || s.writableLength !== 0 || !s.writable || s.destroyed) {
    return s.write(chunk);
  }
  const req = new binding!.WriteWrap();
  req.handle = handle;
  req.oncomplete = directWritten;
  req.buffer = chunk;
  req.socket = s;
  const err = handle.writeBuffer(req, chunk);
  if (err !== 0) {
    // As the stream does with a write its handle refuses.
    s.destroy(writeError(err));
    return false;
  }
  if (binding!.streamBaseState[binding!.kLastWriteWasAsync] === 0) return true;
  s.directReq = req;
  if (chunk.length < s.writableHighWaterMark) return true;
  s.directStopped = true;
  return false;
}

/** `oncomplete` of a direct write (called by Node with the request as `this`). */
function directWritten(this: DirectReq, status: number): void {
  const s = this.socket;
  this.buffer = null;
  s.directReq = undefined;
  if (s.destroyed) return;
  if (status < 0) {
    s.destroy(writeError(status));
    return;
  }
  const held = s.directHeld;
  s.directHeld = undefined;
  held?.();
  if (s.directStopped) {
    s.directStopped = false;
    s.waitingReader?.resume();
  }
}

/** The error a stream write gives for a libuv status (code EPIPE, ECONNRESET...). */
function writeError(status: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(status);
  return Object.assign(new Error(`write ${code}`), { errno: status, code, syscall: 'write' });
}

function heldWrite(this: DirectWriteSocket, chunk: Buffer, encoding: BufferEncoding, cb: WriteCallback): void {
  if (this.directReq === undefined) return streamWrite.call(this, chunk, encoding, cb);
  this.directHeld = () => streamWrite.call(this, chunk, encoding, cb);
}

function heldWritev(this: DirectWriteSocket, chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, cb: WriteCallback): void {
  if (this.directReq === undefined) return streamWritev.call(this, chunks, cb);
  this.directHeld = () => streamWritev.call(this, chunks, cb);
}

function heldFinal(this: DirectWriteSocket, cb: WriteCallback): void {
  if (this.directReq === undefined) return streamFinal.call(this, cb);
  this.directHeld = () => streamFinal.call(this, cb);
}
