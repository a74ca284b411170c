// The server→client direction of an established session under sessions.survive: a relay like
// RelaySocket.relayTo (chunks written on as they come, reads paused while the client is full)
// that also feeds a MessageTap, and that holds back a FATAL (or PANIC) ErrorResponse. A server
// that is going away says goodbye with one ("terminating connection due to administrator
// command", "… unexpected postmaster exit") and closes; an idle session is then moved, and the
// client must not have seen the goodbye of a server it never left. The held bytes go to the
// client after all when the session does not move (release()), or when the server goes on
// talking (then it was not a goodbye).
import type { RelayEnd } from '../net/relay-socket';
import { readErrorFields } from '../protocol/message-reader';
import type { MessageTap } from './message-tap';

const ERROR_RESPONSE = 0x45; // 'E'
/** A goodbye is one short message; more than this held means it was not one. */
const MAX_HELD = 64 * 1024;

export class ServerRelay {
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Set by the tap while a chunk is fed: where a FATAL ErrorResponse began in it. */
  private fatalAt?: number;
  private started = false;
  /** SQLSTATE and message of the goodbye being held. */
  goodbye?: { readonly code?: string; readonly message?: string };

  constructor(
    private readonly backend: RelayEnd,
    private readonly client: RelayEnd,
    private readonly tap: MessageTap,
  ) {}

  /** For the tap's deliver: note a FATAL/PANIC ErrorResponse in the chunk being fed. */
  seen(type: number, body: Buffer, start: number): void {
    if (type !== ERROR_RESPONSE || this.fatalAt !== undefined) return;
    const fields = readErrorFields(body, 0, body.length);
    if (fields?.severity !== 'FATAL' && fields?.severity !== 'PANIC') return;
    this.fatalAt = Math.max(0, start);
    this.goodbye = { code: fields.code, message: fields.message };
  }

  /** A goodbye from the server is being held back from the client. */
  get holding(): boolean {
    return this.heldBytes > 0;
  }

  start(): void {
    this.started = true;
    this.backend.on('data', this.onData);
    this.client.on('drain', this.onDrain);
    if (!this.client.writableNeedDrain) this.backend.resume();
  }

  /** Stop relaying (the held goodbye stays held: release() or drop it). Idempotent. */
  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.backend.off('data', this.onData);
    this.client.off('drain', this.onDrain);
  }

  /** The session does not move: the client gets the server's goodbye after all. */
  release(): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    this.goodbye = undefined;
    for (const b of held) if (this.client.writable) this.client.write(b);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.fatalAt = undefined;
    this.tap.feed(chunk);
    if (this.heldBytes > 0) {
      // The server goes on after its "goodbye": it was not one. Everything in order.
      this.release();
      this.write(chunk);
      return;
    }
    const at = this.fatalAt;
    if (at === undefined) return this.write(chunk);
    if (at > 0) this.write(chunk.subarray(0, at));
    const rest = chunk.subarray(at);
    if (rest.length > MAX_HELD) {
      this.goodbye = undefined;
      return this.write(rest);
    }
    this.held.push(rest);
    this.heldBytes += rest.length;
  };

  private write(chunk: Buffer): void {
    if (!this.client.write(chunk)) this.backend.pause();
  }

  private readonly onDrain = (): void => {
    if (this.started) this.backend.resume();
  };
}
