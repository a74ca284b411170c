/**
 * Messages pgwarden itself sends to a client before (or instead of) a backend answering.
 *
 * ErrorResponse layout (PostgreSQL docs, "Message Formats" and "Error and Notice Message
 * Fields"): Byte1 'E' | Int32 length (counting itself, not the type byte) | fields, each a
 * Byte1 field code followed by a NUL-terminated string | a zero byte ending the list.
 */
import { BackendMessageType } from './constants';

export type ErrorSeverity = 'ERROR' | 'FATAL' | 'PANIC';

export interface ErrorFields {
  severity: ErrorSeverity;
  /** Five-character SQLSTATE, e.g. SqlState.CANNOT_CONNECT_NOW. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/**
 * Answer to SSLRequest / GSSENCRequest meaning "no, continue unencrypted" ("Message Flow /
 * SSL Session Encryption" and "GSSAPI Session Encryption"): a single byte, no framing.
 * Treat these as read-only; they are shared by every session.
 */
export const SSL_REFUSED = Buffer.from('N');
export const GSSENC_REFUSED = Buffer.from('N');

export function errorResponse(f: ErrorFields): Buffer {
  const fields: Array<[string, string | undefined]> = [
    ['S', f.severity], // localized severity; we never localize, so both carry the same word
    ['V', f.severity], // non-localized severity (protocol 3.0 servers since 9.6), what drivers match on
    ['C', f.code],
    ['M', f.message],
    ['D', f.detail],
    ['H', f.hint],
  ];
  const parts: Buffer[] = [];
  for (const [field, value] of fields) {
    if (value === undefined) continue;
    // A NUL inside a value would end the string early and desynchronise the field list.
    parts.push(Buffer.from(field, 'latin1'), Buffer.from(stripNul(value), 'utf8'), ZERO);
  }
  parts.push(ZERO); // end of the field list
  const body = Buffer.concat(parts);

  const message = Buffer.allocUnsafe(5 + body.length);
  message[0] = BackendMessageType.ErrorResponse;
  message.writeInt32BE(4 + body.length, 1);
  body.copy(message, 5);
  return message;
}

const ZERO = Buffer.from([0]);

function stripNul(s: string): string {
  return s.includes('\0') ? s.replace(/\0/g, '') : s;
}
