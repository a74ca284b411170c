// A TLS socket as an end of a session's relay (RelayEnd), for sessions whose TLS pgwarden
// terminates: the client's side (a server-mode TLSSocket over the accepted socket) and, with
// tls.server, the server's side (tls.connect over the backend socket, so Node verifies the
// server's certificate). The client's side is a subclass, RelayTlsSocket, with the four relay
// methods on its prototype; the server leg's socket is made by tls.connect, which cannot make a
// subclass, so it is given the same four functions as its own properties.
//
// Once relaying, a TLS socket reads its decrypted bytes into the buffer shared with RelaySocket
// (net/user-buffer-read.ts): Node's TLSSocket has no `onread` option when it wraps a socket,
// so the same two fields are set on it at relayTo(). Until then, and for anything the stream
// had already buffered, chunks come as 'data' events. The relay itself is the same as for
// RelaySocket: chunks written to the other end after the watcher's look, reads paused while
// the other end is full and resumed on its 'drain'.
import type net from 'node:net';
import tls from 'node:tls';
import type { ChunkWatcher, RelayEnd, SocketOwner } from './relay-socket';
import { readIntoSharedBuffer } from './user-buffer-read';

interface TlsRelayState {
  relayDst?: RelayEnd;
  relayWatcher?: ChunkWatcher;
  relayOwner?: SocketOwner;
  relayReporting?: boolean;
}

type TlsEnd = tls.TLSSocket & RelayEnd & TlsRelayState;

/**
 * The client's side under terminate: a server-mode TLSSocket whose relay methods are on its
 * prototype and whose relay fields exist from construction. Every client TLS socket then has
 * one hidden class from the start, where methods and fields added one by one later would give
 * it new ones: Node's stream code, which reads properties of every socket on every read and
 * write, sees fewer kinds of socket and V8 keeps more of those loads on its fast paths.
 */
export class RelayTlsSocket extends tls.TLSSocket implements RelayEnd, TlsRelayState {
  relayDst?: RelayEnd = undefined;
  relayWatcher?: ChunkWatcher = undefined;
  relayOwner?: SocketOwner = undefined;
  relayReporting?: boolean = false;
  waitingReader?: net.Socket = undefined;

  constructor(socket: ConstructorParameters<typeof tls.TLSSocket>[0], options: tls.TLSSocketOptions) {
    super(socket, { ...options, isServer: true });
  }

  declare relayTo: RelayEnd['relayTo'];
  declare unrelay: RelayEnd['unrelay'];
  declare holdErrors: RelayEnd['holdErrors'];
  declare reportTo: RelayEnd['reportTo'];
}
Object.assign(RelayTlsSocket.prototype, { relayTo, unrelay, holdErrors, reportTo });

/**
 * Give `socket` (the server leg's, made by tls.connect, which cannot make a subclass) the relay
 * methods and return it as a RelayEnd.
 */
export function tlsRelayEnd(socket: tls.TLSSocket): RelayEnd {
  if (socket instanceof RelayTlsSocket) return socket;
  const s = socket as TlsEnd;
  s.relayTo = relayTo;
  s.unrelay = unrelay;
  s.holdErrors = holdErrors;
  s.reportTo = reportTo;
  return s;
}

function relayTo(this: TlsEnd, dst: RelayEnd, watcher?: ChunkWatcher): void {
  this.relayDst = dst;
  this.relayWatcher = watcher;
  dst.waitingReader = this;
  dst.on('drain', resumeWaitingReader);
  this.on('data', relayData);
  readIntoSharedBuffer(this, readShared);
  if (!dst.writableNeedDrain) this.resume();
}

function unrelay(this: TlsEnd): void {
  const dst = this.relayDst;
  if (dst === undefined) return;
  this.relayDst = undefined;
  this.relayWatcher = undefined;
  this.off('data', relayData);
  dst.off('drain', resumeWaitingReader);
  dst.waitingReader = undefined;
}

function holdErrors(this: TlsEnd): void {
  this.on('error', dropError);
}

function reportTo(this: TlsEnd, owner: SocketOwner): void {
  this.relayOwner = owner;
  this.off('error', dropError);
  if (this.relayReporting) return;
  this.relayReporting = true;
  if (this.allowHalfOpen) this.on('end', ended);
  this.on('close', closed);
  this.on('error', failed);
}

function relayData(this: TlsEnd, chunk: Buffer): void {
  if (this.relayDst !== undefined && !relayChunk(this, chunk)) this.pause();
}

/** A chunk along the relay; false when the other end is full (reads must stop). */
function relayChunk(s: TlsEnd, chunk: Buffer): boolean {
  const dst = s.relayDst;
  if (dst === undefined) {
    // After unrelay(): the reads still land here; give them out as the stream would.
    s.emit('data', chunk);
    return true;
  }
  s.relayWatcher?.feed(chunk);
  return dst.write(chunk);
}

/** The shared-buffer read callback (Node calls it as a method of the socket); false stops the reads. */
function readShared(this: TlsEnd, n: number, buf: Buffer): boolean {
  const chunk = Buffer.allocUnsafe(n);
  buf.copy(chunk, 0, 0, n);
  return relayChunk(this, chunk);
}

function resumeWaitingReader(this: RelayEnd): void {
  this.waitingReader?.resume();
}

function ended(this: TlsEnd): void {
  this.relayOwner?.socketEnded(this);
}

function closed(this: TlsEnd): void {
  this.relayOwner?.socketClosed(this);
}

function failed(this: TlsEnd, err: NodeJS.ErrnoException): void {
  this.relayOwner?.socketFailed(this, err);
}

function dropError(): void {}
