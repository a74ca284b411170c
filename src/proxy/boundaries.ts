// Message boundaries of both directions of an established session (5-byte headers only, see
// FrameTracker): whether pgwarden may inject a FATAL ErrorResponse, whether the session is idle
// between transactions, and whether the client said goodbye with Terminate.
import { FrameTracker } from '../protocol/frame-tracker';

const IDLE = 0x49; // 'I'

export class MessageBoundaries {
  readonly server = new FrameTracker('server');
  readonly client = new FrameTracker('client');

  /**
   * Between transactions with nothing in flight: both directions at a message boundary, the
   * last ReadyForQuery said 'I', and every request the client sent has been answered (the
   * startup itself is answered by the first ReadyForQuery).
   */
  get isIdle(): boolean {
    const s = this.server;
    const c = this.client;
    return s.atBoundary && c.atBoundary && s.status === IDLE && s.count === c.count + 1;
  }

  /** The last ReadyForQuery said 'T' or 'E'. */
  get inTransaction(): boolean {
    return this.server.status !== IDLE;
  }
}
