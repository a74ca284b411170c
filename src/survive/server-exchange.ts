// Whole backend messages from a server socket that pgwarden itself talks to while it moves a
// session (login, state replay): nothing of it reaches the client. The socket's 'data', 'close'
// and 'error' are listened to until the returned disposer runs, which also pauses the socket, so
// the next reader (or the relay) starts from where this one stopped. A message over
// MAX_MESSAGE_BYTES, or a close, fails the exchange.
import type net from 'node:net';
import { MessageReader } from '../protocol/message-reader';
import { SessionMoveError } from '../errors';

export interface ExchangeHandlers {
  /** One complete message: type byte, body (the bytes after the length word). */
  message(type: number, body: Buffer): void;
  failed(err: Error): void;
}

export function exchange(socket: net.Socket, h: ExchangeHandlers): () => void {
  const reader = new MessageReader();
  let done = false;
  const dispose = () => {
    if (done) return;
    done = true;
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.off('error', onError);
    socket.pause();
  };
  const fail = (err: Error) => {
    if (done) return;
    dispose();
    h.failed(err);
  };
  function onData(chunk: Buffer): void {
    try {
      reader.feed(chunk, (type, buf, start, end) => {
        if (!done) h.message(type, buf.subarray(start, end));
      });
    } catch (e) {
      fail(new SessionMoveError(`the new server sent a malformed message: ${(e as Error).message}`));
    }
  }
  function onClose(): void {
    fail(new SessionMoveError('the new server closed the connection'));
  }
  function onError(err: NodeJS.ErrnoException): void {
    fail(new SessionMoveError(`the connection to the new server failed: ${err.code ?? err.message}`));
  }
  socket.on('data', onData);
  socket.on('close', onClose);
  socket.on('error', onError);
  socket.resume();
  return dispose;
}
