/**
 * Classifies the first packet a client sends, before anything is known about the session.
 *
 * Layout (PostgreSQL docs, "Message Formats": StartupMessage, SSLRequest, GSSENCRequest,
 * CancelRequest): these packets have no type byte. Each is
 *   Int32 length (counting itself) | Int32 code | payload
 * where the code is a protocol version (major << 16 | minor) or a special request code.
 *
 * Pure and total: never throws, never allocates more than the bytes it was given, and
 * decides `invalid` from the length word alone so a hostile length is never waited for.
 * The checks and SQLSTATEs follow PostgreSQL's own ProcessStartupPacket(), so a client
 * sees the same refusal through pgwarden as it would from the server.
 */
import {
  CANCEL_REQUEST_CODE,
  CANCEL_REQUEST_SIZE,
  FIRST_PACKET_HEADER,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET,
  NEGOTIATION_REQUEST_SIZE,
  PROTOCOL_MAJOR,
  SSL_REQUEST_CODE,
  TLS_HANDSHAKE_RECORD,
} from './constants';
import { SqlState, type SqlStateCode } from '../errors';

export { MAX_STARTUP_PACKET };

export type FirstPacket =
  | { kind: 'incomplete' }
  | { kind: 'ssl'; size: 8 }
  | { kind: 'gssenc'; size: 8 }
  | { kind: 'cancel'; size: 16; processId: number; secretKey: number }
  | { kind: 'startup'; size: number; protocolMajor: 3; protocolMinor: number; params: Record<string, string> }
  | { kind: 'direct-tls' }
  | { kind: 'invalid'; reason: string; sqlstate: SqlStateCode };

const INCOMPLETE: FirstPacket = Object.freeze({ kind: 'incomplete' });

/**
 * `buf` holds every byte received so far. On a complete packet, `size` is how many bytes it
 * occupies; the caller keeps `buf.subarray(size)` (bytes the client pipelined after it).
 */
export function readFirstPacket(buf: Buffer): FirstPacket {
  if (buf.length === 0) return INCOMPLETE;

  // A TLS ClientHello can never start a length word (it would declare > 350 MB), so the
  // first byte alone tells a direct-TLS client (PostgreSQL 17 sslnegotiation=direct) apart.
  if (buf[0] === TLS_HANDSHAKE_RECORD) return { kind: 'direct-tls' };

  const length = declaredLength(buf);
  if (length === undefined) return INCOMPLETE;
  if (length < FIRST_PACKET_HEADER || length > MAX_STARTUP_PACKET) {
    return protocolViolation(describeBadLength(buf, length));
  }
  if (buf.length < FIRST_PACKET_HEADER) return INCOMPLETE;

  const code = buf.readUInt32BE(4);
  switch (code) {
    case SSL_REQUEST_CODE:
      return length === NEGOTIATION_REQUEST_SIZE
        ? { kind: 'ssl', size: NEGOTIATION_REQUEST_SIZE }
        : protocolViolation(`SSLRequest must be ${NEGOTIATION_REQUEST_SIZE} bytes long, it declares ${length}`);
    case GSSENC_REQUEST_CODE:
      return length === NEGOTIATION_REQUEST_SIZE
        ? { kind: 'gssenc', size: NEGOTIATION_REQUEST_SIZE }
        : protocolViolation(`GSSENCRequest must be ${NEGOTIATION_REQUEST_SIZE} bytes long, it declares ${length}`);
    case CANCEL_REQUEST_CODE:
      if (length !== CANCEL_REQUEST_SIZE) {
        return protocolViolation(`CancelRequest must be ${CANCEL_REQUEST_SIZE} bytes long, it declares ${length}`);
      }
      if (buf.length < CANCEL_REQUEST_SIZE) return INCOMPLETE;
      return {
        kind: 'cancel',
        size: CANCEL_REQUEST_SIZE,
        processId: buf.readInt32BE(8),
        secretKey: buf.readInt32BE(12),
      };
  }

  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== PROTOCOL_MAJOR) {
    // Same wording and SQLSTATE as PostgreSQL; 1234.x codes we do not know land here too.
    return {
      kind: 'invalid',
      reason: `unsupported frontend protocol ${major}.${minor}: server supports ${PROTOCOL_MAJOR}.0 to ${PROTOCOL_MAJOR}.x`,
      sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
    };
  }
  if (buf.length < length) return INCOMPLETE;

  const params = readStartupParams(buf.subarray(FIRST_PACKET_HEADER, length));
  if (typeof params === 'string') return protocolViolation(params);
  if (!params.user) {
    // PostgreSQL answers this case with 28000, not 08P01; an empty user counts as missing.
    return {
      kind: 'invalid',
      reason: 'no PostgreSQL user name specified in startup packet',
      sqlstate: SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
    };
  }
  return { kind: 'startup', size: length, protocolMajor: PROTOCOL_MAJOR, protocolMinor: minor, params };
}

/**
 * The declared length, or undefined while fewer than 4 bytes are known and the known ones
 * still allow a legal length. Missing low bytes are taken as zero: that is the smallest
 * length the prefix can still become, so if even that is too large (or the sign bit is
 * set) the packet is refused at once.
 */
function declaredLength(buf: Buffer): number | undefined {
  if (buf.length >= 4) return buf.readInt32BE(0);
  const padded = Buffer.alloc(4);
  buf.copy(padded, 0, 0, buf.length);
  const smallest = padded.readInt32BE(0);
  return smallest < 0 || smallest > MAX_STARTUP_PACKET ? smallest : undefined;
}

/**
 * StartupMessage body after the version: pairs of NUL-terminated name and value strings,
 * then one zero byte which must be the packet's last byte (as PostgreSQL requires).
 * Returns the parameters, or a reason string when the layout is broken.
 */
function readStartupParams(body: Buffer): Record<string, string> | string {
  // A null-prototype object: a client-chosen name such as "__proto__" stays plain data.
  const params: Record<string, string> = Object.create(null);
  let pos = 0;
  for (;;) {
    if (pos >= body.length) {
      return 'invalid startup packet layout: parameter list is not terminated by a zero byte';
    }
    if (body[pos] === 0) {
      return pos === body.length - 1
        ? params
        : `invalid startup packet layout: ${body.length - pos - 1} byte(s) after the terminator`;
    }
    const nameEnd = body.indexOf(0, pos);
    if (nameEnd === -1) return 'invalid startup packet layout: truncated parameter name';
    const valueEnd = body.indexOf(0, nameEnd + 1);
    const name = body.toString('utf8', pos, nameEnd);
    if (valueEnd === -1) return `invalid startup packet layout: parameter "${printable(name)}" has no value`;
    params[name] = body.toString('utf8', nameEnd + 1, valueEnd);
    pos = valueEnd + 1;
  }
}

function protocolViolation(reason: string): FirstPacket {
  return { kind: 'invalid', reason, sqlstate: SqlState.PROTOCOL_VIOLATION };
}

/** Explains a refused length; shows the first bytes so an operator can spot e.g. an HTTP client. */
function describeBadLength(buf: Buffer, length: number): string {
  const head = buf.subarray(0, 8);
  const hex = head.toString('hex').replace(/(..)(?!$)/g, '$1 ');
  const asText = head.toString('latin1');
  const looksLikeText = /^[\x20-\x7e\r\n]+$/.test(asText);
  const hint = looksLikeText
    ? `; as text "${asText.replace(/\r/g, '\\r').replace(/\n/g, '\\n')}": is the client speaking PostgreSQL?`
    : '';
  const allowed = `${FIRST_PACKET_HEADER} to ${MAX_STARTUP_PACKET} bytes`;
  const what =
    buf.length >= 4 ? `declared ${length} bytes, allowed ${allowed}` : `no length of ${allowed} begins like this`;
  return `invalid length of startup packet: ${what} (first bytes ${hex}${hint})`;
}

/** Keeps a client-supplied name readable and short inside an error message. */
function printable(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}...` : clean;
}
