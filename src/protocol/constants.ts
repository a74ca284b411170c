/**
 * Numbers of the PostgreSQL frontend/backend protocol that more than one module needs.
 *
 * Source: PostgreSQL docs, "Frontend/Backend Protocol" — sections "Message Formats" and
 * "Message Flow / Start-up".
 */

/** PostgreSQL's own limit (MAX_STARTUP_PACKET_LENGTH in pqcomm.h); a larger first packet is refused. */
export const MAX_STARTUP_PACKET = 10_000;

/** Bytes of the untyped header: Int32 length (counts itself) + Int32 request/protocol code. */
export const FIRST_PACKET_HEADER = 8;

/**
 * Request codes sent in place of a protocol version. They are chosen as major 1234 with
 * minors 5678..5680 so that no real protocol version can collide with them.
 */
export const CANCEL_REQUEST_CODE = 80877102; // (1234 << 16) | 5678
export const SSL_REQUEST_CODE = 80877103; //    (1234 << 16) | 5679
export const GSSENC_REQUEST_CODE = 80877104; // (1234 << 16) | 5680

/** Size of SSLRequest and GSSENCRequest: length + code, nothing else. */
export const NEGOTIATION_REQUEST_SIZE = 8;
/** Size of a protocol 3.0 CancelRequest: length + code + Int32 process id + Int32 secret key. */
export const CANCEL_REQUEST_SIZE = 16;

/** The only protocol major version PostgreSQL (7.4 and later) speaks. */
export const PROTOCOL_MAJOR = 3;

/** First byte of a TLS handshake record (ContentType handshake = 22), PostgreSQL 17 `sslnegotiation=direct`. */
export const TLS_HANDSHAKE_RECORD = 0x16;

/** Backend message type bytes this project reads or writes ("Message Formats"). */
export const BackendMessageType = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  ErrorResponse: 0x45, // 'E'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoticeResponse: 0x4e, // 'N'
  ParameterStatus: 0x53, // 'S'
  ReadyForQuery: 0x5a, // 'Z'
} as const;
