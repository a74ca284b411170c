// A socket's byte stream with bytes already read put back in front: PostgreSQL 17's direct TLS
// starts with the ClientHello, which pgwarden has read to recognise it before it knows that a
// TLS socket must take the connection over. A TLSSocket over this stream reads the ClientHello
// first, then whatever the socket receives; what it writes goes to the socket. Backpressure
// both ways; the end of one is the end of the other.
import { Duplex } from 'node:stream';
import type net from 'node:net';

export function prefixedStream(socket: net.Socket, head: Buffer): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  if (head.length > 0) stream.push(head);
  socket.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('close', () => stream.destroy());
  socket.on('error', (err) => stream.destroy(err));
  return stream;
}
