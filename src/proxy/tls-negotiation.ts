// TLS negotiation with the server under `tls.mode: passthrough`: pgwarden sends the client's
// SSLRequest on and reads the server's one-byte answer (protocol docs, "SSL Session
// Encryption"): 'S' — TLS follows, end to end between client and server; 'N' — no TLS, the
// client goes on in plain text. Anything else is not a PostgreSQL server.

/** SSLRequest: Int32 8, Int32 80877103 (protocol docs, "Message Formats"). */
export const SSL_REQUEST_BYTES = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export type SslAnswer = 'accepted' | 'refused' | 'invalid';

/** The server's answer to SSLRequest, from the first chunk it sent. */
export function readSslAnswer(chunk: Buffer): SslAnswer {
  if (chunk[0] === 0x53 /* 'S' */) return 'accepted';
  // 'N' alone: a server may not send anything else before the client's next packet.
  if (chunk[0] === 0x4e /* 'N' */ && chunk.length === 1) return 'refused';
  return 'invalid';
}
