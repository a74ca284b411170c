// Follows message boundaries of one direction of a PostgreSQL stream by reading only the 5-byte
// headers (Byte1 type, Int32 length including itself — protocol docs, "Message Formats"), with
// no allocation per chunk. After startup every message in both directions is typed, so this is
// all a session needs to know whether it may inject a FATAL ErrorResponse (at a boundary) and
// whether the session is idle between transactions.
//
// Server→client: counts ReadyForQuery ('Z') and remembers its transaction status byte
// ('I' idle, 'T' in a transaction, 'E' failed transaction).
// Client→server: counts requests that the server answers with one ReadyForQuery each: Query
// ('Q'), Sync ('S') and FunctionCall ('F'); and notes Terminate ('X').
const READY_FOR_QUERY = 0x5a; // 'Z'
const QUERY = 0x51; // 'Q'
const SYNC = 0x53; // 'S'
const FUNCTION_CALL = 0x46; // 'F'
const TERMINATE = 0x58; // 'X'
const MAX_INT32 = 0x7fffffff;

export class FrameTracker {
  /** Body bytes still to come in the current message. */
  private need = 0;
  /** Header bytes of the next message seen so far (0 = at a boundary). */
  private headerBytes = 0;
  private type = 0;
  private length = 0;
  private wantStatus = false;
  /** The stream made no sense (a length below 4, or negative): boundaries are unknown from here on. */
  broken = false;
  /** Messages counted (ReadyForQuery on the server side, requests on the client side). */
  count = 0;
  /** The client sent Terminate (client side): its close is the normal end of the session. */
  terminated = false;
  /** Transaction status of the last ReadyForQuery (server side). */
  status = 0x49; // 'I'

  constructor(private readonly side: 'server' | 'client') {}

  get atBoundary(): boolean {
    return !this.broken && this.need === 0 && this.headerBytes === 0 && !this.wantStatus;
  }

  feed(buf: Buffer): void {
    if (this.broken) return;
    const n = buf.length;
    let i = 0;
    while (i < n) {
      if (this.need > 0) {
        if (this.wantStatus) {
          this.status = buf[i];
          this.wantStatus = false;
        }
        const take = Math.min(this.need, n - i);
        this.need -= take;
        i += take;
        continue;
      }
      const b = buf[i++];
      if (this.headerBytes === 0) {
        this.type = b;
        this.length = 0;
        this.headerBytes = 1;
        continue;
      }
      this.length = this.length * 256 + b;
      if (++this.headerBytes < 5) continue;
      this.headerBytes = 0;
      // The length word is a signed Int32: one with the top bit set is negative, as
      // nonsensical as one below 4 (libpq and the server both treat it so).
      if (this.length < 4 || this.length > MAX_INT32) {
        this.broken = true;
        return;
      }
      this.need = this.length - 4;
      this.onMessage(this.type);
    }
  }

  private onMessage(type: number): void {
    if (this.side === 'server') {
      if (type === READY_FOR_QUERY) {
        this.count++;
        this.wantStatus = this.need > 0;
      }
    } else if (type === QUERY || type === SYNC || type === FUNCTION_CALL) {
      this.count++;
    } else if (type === TERMINATE) {
      this.terminated = true;
    }
  }
}
