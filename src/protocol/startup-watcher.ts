/**
 * Watches the backend→client byte stream while a session starts, to learn the session's
 * cancel key (BackendKeyData) and the moment startup ends (the first ReadyForQuery).
 * The caller forwards the raw chunks itself; this only looks at them.
 *
 * Backend messages (PostgreSQL docs, "Message Formats"): Byte1 type | Int32 length counting
 * itself but not the type byte | body. During start-up ("Message Flow / Start-up") a server
 * sends only Authentication* 'R', NegotiateProtocolVersion 'v', ErrorResponse 'E',
 * NoticeResponse 'N', ParameterStatus 'S', BackendKeyData 'K' and ReadyForQuery 'Z';
 * anything else means the peer is not (or no longer) speaking the protocol, as libpq
 * also concludes.
 *
 * Why a small frame reader here rather than pg-protocol's Parser (checked on 1.16.1):
 * its Parser throws on AuthenticationGSS/SSPI/GSSContinue (R 7/8/9) — so every GSSAPI or
 * SSPI login would look like a protocol error, and after a throw it re-delivers already
 * reported messages; it loops forever on an ErrorResponse without its final zero byte; it
 * buffers a message of any declared length; and it reports NegotiateProtocolVersion as an
 * error named 'error'. This reader keeps only the 5-byte header and the bodies of 'K', 'Z'
 * and 'E' (each bounded) and skips every other body without holding it.
 */
import { BackendMessageType as T } from './constants';
import { SqlState } from '../errors';
import { readErrorFields } from './message-reader';

export interface StartupEvents {
  onBackendKeyData(processId: number, secretKey: number): void;
  /** The first ReadyForQuery: startup finished, the session becomes a raw pipe. */
  onReadyForQuery(status: 'I' | 'T' | 'E'): void;
  /** An ErrorResponse from the server during startup, or SqlState.PROTOCOL_VIOLATION when the stream is malformed. */
  onError(fields: { severity?: string; code?: string; message?: string }): void;
}

/** Largest backend message accepted during startup (GSSAPI tokens are the big ones, tens of kB). */
export const MAX_STARTUP_BACKEND_MESSAGE = 1024 * 1024;

const HEADER_SIZE = 5;
/** Protocol 3.2 (PostgreSQL 18) allows secret keys up to 256 bytes. */
const MAX_SECRET_KEY = 256;

/** Smallest and largest legal length word per message type allowed during startup. */
const LENGTH_LIMITS: ReadonlyMap<number, readonly [min: number, max: number]> = new Map([
  [T.Authentication, [8, MAX_STARTUP_BACKEND_MESSAGE]], // Int32 auth code, then method data
  [T.NegotiateProtocolVersion, [12, MAX_STARTUP_BACKEND_MESSAGE]], // Int32 version, Int32 count, names
  [T.ErrorResponse, [5, MAX_STARTUP_BACKEND_MESSAGE]], // at least the terminating zero
  [T.NoticeResponse, [5, MAX_STARTUP_BACKEND_MESSAGE]],
  [T.ParameterStatus, [6, MAX_STARTUP_BACKEND_MESSAGE]], // two C strings
  [T.BackendKeyData, [12, 8 + MAX_SECRET_KEY]], // Int32 process id, secret key (4 bytes before 3.2)
  [T.ReadyForQuery, [5, 5]], // Byte1 transaction status
]);

export class StartupWatcher {
  private readonly header = Buffer.alloc(HEADER_SIZE);
  private headerFilled = 0;
  private type = 0;
  /** Body bytes of the current message still to come. */
  private remaining = 0;
  /** Body of the current message when it is one we decode; undefined when skipping. */
  private body: Buffer | undefined;
  private bodyFilled = 0;
  private finished = false;
  /** Offset in the current chunk where the message being read began; -1 when it began in an earlier chunk. */
  private messageStart = -1;
  /** Set when the stream proved malformed (see feed()'s return value). */
  malformed = false;

  constructor(private readonly events: StartupEvents) {}

  /** True once startup ended (first ReadyForQuery) or the stream proved malformed: stop feeding. */
  get done(): boolean {
    return this.finished;
  }

  /**
   * Returns how many leading bytes of `chunk` are well-formed messages (or parts of them): the
   * whole chunk, except after a malformed message, where it is the offset at which that message
   * began in this chunk, or -1 when it began in an earlier chunk (the client has part of it).
   */
  feed(chunk: Buffer): number {
    let pos = 0;
    this.messageStart = this.headerFilled === 0 && this.remaining === 0 ? 0 : -1;
    while (pos < chunk.length && !this.finished) {
      if (this.headerFilled === 0) this.messageStart = pos;
      if (this.headerFilled < HEADER_SIZE) {
        const n = Math.min(HEADER_SIZE - this.headerFilled, chunk.length - pos);
        chunk.copy(this.header, this.headerFilled, pos, pos + n);
        this.headerFilled += n;
        pos += n;
        if (this.headerFilled === HEADER_SIZE) this.beginMessage();
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - pos);
      if (this.body) chunk.copy(this.body, this.bodyFilled, pos, pos + n);
      this.bodyFilled += n;
      this.remaining -= n;
      pos += n;
      if (this.remaining === 0) this.endMessage();
    }
    return this.malformed ? this.messageStart : chunk.length;
  }

  private beginMessage(): void {
    this.type = this.header[0];
    const length = this.header.readUInt32BE(1);
    const limits = LENGTH_LIMITS.get(this.type);
    if (!limits) {
      this.fail(
        `unexpected message type ${describeType(this.type)} from the backend during startup` +
          ' (is the backend a PostgreSQL server on this port?)',
      );
      return;
    }
    const [min, max] = limits;
    if (length < min || length > max) {
      this.fail(`${describeType(this.type)} message declares length ${length}, allowed ${min} to ${max}`);
      return;
    }
    this.remaining = length - 4;
    this.bodyFilled = 0;
    const decoded = this.type === T.BackendKeyData || this.type === T.ReadyForQuery || this.type === T.ErrorResponse;
    this.body = decoded ? Buffer.allocUnsafe(this.remaining) : undefined;
  }

  private endMessage(): void {
    const { type, body } = this;
    this.headerFilled = 0;
    this.body = undefined;
    if (!body) return;
    switch (type) {
      case T.BackendKeyData:
        // Before protocol 3.2 the key is one Int32. A longer (3.2) key has no number form;
        // that session's cancel requests then take the "unknown key" path.
        if (body.length === 8) this.events.onBackendKeyData(body.readInt32BE(0), body.readInt32BE(4));
        return;
      case T.ReadyForQuery: {
        const status = String.fromCharCode(body[0]);
        if (status !== 'I' && status !== 'T' && status !== 'E') {
          this.fail(`ReadyForQuery carries unknown transaction status 0x${body[0].toString(16)}`);
          return;
        }
        this.finished = true; // before the callback, so a re-entrant feed() is ignored
        this.events.onReadyForQuery(status);
        return;
      }
      case T.ErrorResponse: {
        const fields = readErrorFields(body, 0, body.length);
        if (!fields) {
          this.fail('ErrorResponse from the backend has a truncated field list');
          return;
        }
        this.events.onError(fields);
        return;
      }
    }
  }

  private fail(reason: string): void {
    this.finished = true;
    this.malformed = true;
    this.body = undefined;
    this.events.onError({ code: SqlState.PROTOCOL_VIOLATION, message: `malformed backend startup stream: ${reason}` });
  }
}

function describeType(type: number): string {
  const printable = type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}' ` : '';
  return `${printable}(0x${type.toString(16).padStart(2, '0')})`;
}
