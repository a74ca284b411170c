// A TLS socket as an end of a session's relay (RelayEnd), for sessions whose TLS pgwarden
// terminates: the client's side (a server-mode TLSSocket over the accepted socket) and, with
// tls.server, the server's side (tls.connect over the backend socket, so Node verifies the
// server's certificate). The four relay methods are given to the socket object itself rather
// than through a subclass: the server leg's socket is made by tls.connect, which cannot make a
// subclass, and one way for both sides is simpler to follow.
//
// TLS sockets read through the stream machinery ('data' events): the shared read buffer of
// RelaySocket applies to the raw socket underneath, where the encrypted bytes arrive. The
// relay itself is the same: chunks written to the other end after the watcher's look, reads
// paused while the other end is full and resumed on its 'drain'.
import type tls from 'node:tls';
import type { ChunkWatcher, RelayEnd, SocketOwner } from './relay-socket';

interface TlsRelayState {
  relayDst?: RelayEnd;
  relayWatcher?: ChunkWatcher;
  relayOwner?: SocketOwner;
  relayReporting?: boolean;
}

type TlsEnd = tls.TLSSocket & RelayEnd & TlsRelayState;

/** Give `socket` the relay methods (idempotent) and return it as a RelayEnd. */
export function tlsRelayEnd(socket: tls.TLSSocket): RelayEnd {
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
  const dst = this.relayDst;
  if (dst === undefined) return;
  this.relayWatcher?.feed(chunk);
  if (!dst.write(chunk)) this.pause();
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
