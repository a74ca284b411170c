// Backend messages decoded straight from Buffers: the framing of a backend byte stream and the
// few messages a health check reads on its kept connection (health/check-session.ts), and the
// ErrorResponse field list, which the session's startup watcher (startup-watcher.ts) reads too.
// For the check, pg's query path (Query objects, a generic Parser, Result and type parsers)
// costs about a millisecond of CPU per check, most of it garbage; this costs a few
// microseconds. Pure: no I/O, no timers. Layouts from the PostgreSQL docs, "Frontend/Backend
// Protocol" › "Message Formats" (55.7 in the PostgreSQL 15 manual).
import { CheckProtocolError } from '../errors';

/** Backend message type bytes that matter to a check (everything else is skipped). */
export const MSG_DATA_ROW = 0x44; // 'D'
export const MSG_ERROR_RESPONSE = 0x45; // 'E'
export const MSG_READY_FOR_QUERY = 0x5a; // 'Z'
export const MSG_PARAMETER_STATUS = 0x53; // 'S'

/**
 * The check reply is a few hundred bytes and an ErrorResponse a few kilobytes; anything claiming
 * more is not a PostgreSQL server talking sense, and must not make us buffer it.
 */
export const MAX_MESSAGE_BYTES = 1 << 20;

/** Called once per complete message with its type byte and body bounds (type and length excluded). */
export type OnMessage = (type: number, buf: Buffer, start: number, end: number) => void;

/**
 * Splits a byte stream into messages: Byte1 type, Int32 length (counting itself), body. TCP may
 * cut anywhere, so an incomplete tail is kept for the next chunk; a whole chunk (the usual case:
 * the entire reply in one read) is decoded in place without copying.
 */
export class MessageReader {
  private tail: Buffer | undefined;

  /** Throws CheckProtocolError on a length that is impossible or above MAX_MESSAGE_BYTES. */
  feed(chunk: Buffer, onMessage: OnMessage): void {
    let buf = chunk;
    if (this.tail !== undefined) {
      buf = Buffer.concat([this.tail, chunk]);
      this.tail = undefined;
    }
    let offset = 0;
    while (buf.length - offset >= 5) {
      const length = buf.readInt32BE(offset + 1);
      if (length < 4 || length > MAX_MESSAGE_BYTES) {
        throw new CheckProtocolError(`backend message '${String.fromCharCode(buf[offset]!)}' claims ${length} bytes`);
      }
      const end = offset + 1 + length;
      if (end > buf.length) break;
      onMessage(buf[offset]!, buf, offset + 5, end);
      offset = end;
    }
    if (offset < buf.length) this.tail = buf.subarray(offset);
  }

  /** Forget a partial message (the connection it came from is gone). */
  reset(): void {
    this.tail = undefined;
  }
}

/**
 * DataRow body: Int16 column count, then per column Int32 length (-1 for NULL) and the value in
 * text format. Values of the check query are ASCII, so latin1 decoding is exact and cheapest.
 */
export function readDataRow(buf: Buffer, start: number, end: number): (string | null)[] {
  if (end - start < 2) throw new CheckProtocolError('DataRow too short');
  const count = buf.readInt16BE(start);
  const values: (string | null)[] = new Array<string | null>(count);
  let offset = start + 2;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > end) throw new CheckProtocolError('DataRow truncated');
    const length = buf.readInt32BE(offset);
    offset += 4;
    if (length < 0) {
      values[i] = null;
      continue;
    }
    if (offset + length > end) throw new CheckProtocolError('DataRow value truncated');
    values[i] = buf.toString('latin1', offset, offset + length);
    offset += length;
  }
  return values;
}

/**
 * ParameterStatus body: String name, String value ("Message Formats"). Returns undefined when a
 * NUL is missing; the names and values the check reads are ASCII.
 */
export function readParameterStatus(buf: Buffer, start: number, end: number): { readonly name: string; readonly value: string } | undefined {
  const nameEnd = buf.indexOf(0, start);
  if (nameEnd < 0 || nameEnd >= end) return undefined;
  const valueEnd = buf.indexOf(0, nameEnd + 1);
  if (valueEnd < 0 || valueEnd >= end) return undefined;
  return { name: buf.toString('latin1', start, nameEnd), value: buf.toString('latin1', nameEnd + 1, valueEnd) };
}

/** The fields of an ErrorResponse a check reports, shaped like pg's DatabaseError for classify(). */
export interface ServerError {
  readonly severity: string;
  readonly code: string;
  readonly message: string;
}

/** The ErrorResponse fields pgwarden reads, as the server sent them (each absent when not sent). */
export interface ErrorFields {
  readonly severity?: string;
  readonly code?: string;
  readonly message?: string;
}

/**
 * ErrorResponse (and NoticeResponse) body: fields of Byte1 type + String (NUL-terminated), ended
 * by a 0 byte. 'V' is the non-localized severity (9.6+) and wins over 'S', the localized one;
 * 'C' is the SQLSTATE, 'M' the message ("Error and Notice Message Fields"). Returns undefined
 * when a string or the final zero byte is missing.
 */
export function readErrorFields(buf: Buffer, start: number, end: number): ErrorFields | undefined {
  let severity: string | undefined;
  let localizedSeverity: string | undefined;
  let code: string | undefined;
  let message: string | undefined;
  let offset = start;
  while (offset < end) {
    const field = buf[offset]!;
    if (field === 0) return { severity: severity ?? localizedSeverity, code, message };
    const nul = buf.indexOf(0, offset + 1);
    if (nul < 0 || nul >= end) return undefined;
    const value = buf.toString('utf8', offset + 1, nul);
    if (field === 0x56) severity = value; // 'V'
    else if (field === 0x53) localizedSeverity = value; // 'S'
    else if (field === 0x43) code = value; // 'C'
    else if (field === 0x4d) message = value; // 'M'
    offset = nul + 1;
  }
  return undefined;
}

/** An ErrorResponse as a check reports it; throws CheckProtocolError on a truncated field list. */
export function readErrorResponse(buf: Buffer, start: number, end: number): ServerError {
  const f = readErrorFields(buf, start, end);
  if (f === undefined) throw new CheckProtocolError('ErrorResponse field list not terminated');
  return { severity: f.severity || 'ERROR', code: f.code ?? '', message: f.message || 'error without a message' };
}
