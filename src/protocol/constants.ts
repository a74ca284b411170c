/**
 * Numbers of the PostgreSQL frontend/backend protocol that more than one module needs.
 *
 * Source: PostgreSQL docs, "Frontend/Backend Protocol" — sections "Message Formats" and
 * "Message Flow / Start-up". SQLSTATEs: Appendix A, "PostgreSQL Error Codes".
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

/** SQLSTATE codes pgwarden sends to clients. Never reuse a constant for a different meaning. */
export const SqlState = {
  /** 08P01 protocol_violation: malformed packet, bad length, garbage. */
  PROTOCOL_VIOLATION: '08P01',
  /** 0A000 feature_not_supported: PostgreSQL uses it for an unsupported protocol version. */
  FEATURE_NOT_SUPPORTED: '0A000',
  /** 28000 invalid_authorization_specification: PostgreSQL uses it for a startup packet without `user`. */
  INVALID_AUTHORIZATION_SPECIFICATION: '28000',
  /** 28P01 invalid_password. */
  INVALID_PASSWORD: '28P01',
  /** 57P01 admin_shutdown: the proxy is shutting down. */
  ADMIN_SHUTDOWN: '57P01',
  /** 57P03 cannot_connect_now: no backend available for the route. */
  CANNOT_CONNECT_NOW: '57P03',
  /** 08006 connection_failure: the backend connection failed. */
  CONNECTION_FAILURE: '08006',
  /** 57P05 idle_session_timeout: closed after proxy.client_idle_timeout between transactions. */
  IDLE_SESSION_TIMEOUT: '57P05',
  /** XX000 internal_error: a bug in pgwarden; the session was cleaned up. */
  INTERNAL_ERROR: 'XX000',
  /** 53300 too_many_connections. */
  TOO_MANY_CONNECTIONS: '53300',
} as const;
