// With sessions.survive on, each direction of an established session is watched by a MessageTap
// instead of a bare FrameTracker: the chunk goes to the FrameTracker (boundaries, idle) as
// before, and is also cut into whole messages (type byte + body) for the session's state
// tracker. The relay still writes the chunk on unchanged; the tap only looks. Off, none of this
// runs: the hot path keeps its 5-byte-header watcher.
//
// Bounded: a message body is gathered only up to MAX_TRACKED_BODY. A longer DataRow, CopyData
// or FunctionCall result carries rows, not session state, and is skipped without being told; a
// longer message of any other type (a 2 MB Query might hold a SET) cannot be followed, and the
// tap says so in `lost` — the session is then not movable, ever (conservative).
import type { ChunkWatcher } from '../net/relay-socket';
import type { FrameTracker } from '../protocol/frame-tracker';

export const MAX_TRACKED_BODY = 1 << 20;

/** Messages that carry data only: skipped when too long to gather ('D' DataRow, 'd' CopyData, 'V' FunctionCallResponse). */
const DATA_ONLY: ReadonlySet<number> = new Set([0x44, 0x64, 0x56]);

/** `start`: where the message began in the chunk being fed, -1 when it began in an earlier chunk. */
export type Deliver = (type: number, body: Buffer, start: number) => void;

export class MessageTap implements ChunkWatcher {
  /** Why messages of this direction can no longer be followed (undefined: every one was). */
  lost?: string;
  private readonly header = Buffer.alloc(5);
  private headerFilled = 0;
  private type = 0;
  /** Body bytes of the current message still to come. */
  private remaining = 0;
  /** The body being gathered; undefined while skipping an oversized one. */
  private body?: Buffer;
  private bodyFilled = 0;
  /** Where the current message began in the chunk being fed (-1: in an earlier one). */
  private start = -1;

  constructor(
    private readonly frames: FrameTracker,
    private readonly deliver: Deliver,
    private readonly side: 'client' | 'server',
  ) {}

  feed(chunk: Buffer): void {
    this.frames.feed(chunk);
    if (this.lost !== undefined) return;
    let pos = 0;
    const n = chunk.length;
    this.start = -1;
    while (pos < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - pos);
        if (this.body) chunk.copy(this.body, this.bodyFilled, pos, pos + take);
        this.bodyFilled += take;
        this.remaining -= take;
        pos += take;
        if (this.remaining === 0) this.finish();
        continue;
      }
      // At a boundary with the whole message in this chunk (the usual case): no copy.
      if (this.headerFilled === 0 && n - pos >= 5) {
        const length = chunk.readInt32BE(pos + 1);
        if (length < 4) return this.lose(`a ${this.side} message declared length ${length}`);
        if (n - pos >= 1 + length && length - 4 <= MAX_TRACKED_BODY) {
          this.deliver(chunk[pos]!, chunk.subarray(pos + 5, pos + 1 + length), pos);
          pos += 1 + length;
          continue;
        }
      }
      if (this.headerFilled === 0) this.start = pos;
      const take = Math.min(5 - this.headerFilled, n - pos);
      chunk.copy(this.header, this.headerFilled, pos, pos + take);
      this.headerFilled += take;
      pos += take;
      if (this.headerFilled < 5) continue;
      this.headerFilled = 0;
      this.type = this.header[0]!;
      const length = this.header.readInt32BE(1);
      if (length < 4) return this.lose(`a ${this.side} message declared length ${length}`);
      this.remaining = length - 4;
      this.bodyFilled = 0;
      if (this.remaining <= MAX_TRACKED_BODY) this.body = Buffer.allocUnsafe(this.remaining);
      else if (DATA_ONLY.has(this.type)) this.body = undefined;
      else return this.lose(`a ${this.side} message of type '${String.fromCharCode(this.type)}' over ${MAX_TRACKED_BODY} bytes could not be followed`);
      if (this.remaining === 0) this.finish();
    }
  }

  private finish(): void {
    const body = this.body;
    this.body = undefined;
    if (body) this.deliver(this.type, body, this.start);
  }

  private lose(reason: string): void {
    this.lost = reason;
    this.body = undefined;
  }
}
