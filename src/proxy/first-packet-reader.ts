// Reads what a client sends before its session is a relay: the first packet(s) — SSLRequest,
// GSSENCRequest, CancelRequest, StartupMessage — bounded in size (MAX_STARTUP_PACKET) and in
// time (client_login_timeout), and afterwards holds whatever the client sends too early (it
// should be silent until the server answers) so a redispatch to another server loses nothing.
//
// Two modes: `parse()` hands each complete packet to the session and arms the login timer;
// `hold()` only keeps bytes (the queue timeout governs the wait then). dispose() lets go of the
// client socket for good: from there on it is relayed.
import { readFirstPacket, MAX_STARTUP_PACKET, type FirstPacket } from '../protocol/first-packet';
import type { Clock } from '../clock';
import type { RelayEnd } from '../net/relay-socket';

export interface FirstPacketHandler {
  /** A complete first packet; return true to go on reading the next one from the buffer. */
  firstPacket(p: FirstPacket): boolean;
  /** No (complete) packet within client_login_timeout. */
  loginTimedOut(ms: number): void;
  /** More bytes than a startup packet may have, while parsing or while holding. */
  firstPacketsOverflow(reason: string): void;
}

/** One empty buffer for every session with nothing buffered (most of them, for their whole life). */
const NO_BYTES = Buffer.alloc(0);

type TimerHandle = ReturnType<Clock['setTimeout']>;

export class FirstPacketReader {
  private buffered: Buffer = NO_BYTES;
  private parsing = false;
  private timer?: TimerHandle;
  private listening = false;

  constructor(
    private readonly client: RelayEnd,
    private readonly clock: Clock,
    private readonly handler: FirstPacketHandler,
  ) {}

  /** Bytes received and not yet handed on. */
  get pending(): number {
    return this.buffered.length;
  }

  /** Parse packets as they complete, within `loginTimeoutMs` (client_login_timeout) from now. */
  parse(loginTimeoutMs: number): void {
    if (!this.listening) {
      this.listening = true;
      this.client.on('data', this.onData);
    }
    this.parsing = true;
    this.clearTimer();
    const ms = loginTimeoutMs;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.handler.loginTimedOut(ms);
    }, ms);
    this.drain();
  }

  /** Keep (bounded) what arrives, parse nothing, no login timer (listening from here if not yet). */
  hold(): void {
    if (!this.listening) {
      this.listening = true;
      this.client.on('data', this.onData);
    }
    this.parsing = false;
    this.clearTimer();
  }

  /** Everything buffered, handed over (the buffer is empty afterwards). */
  take(): Buffer {
    const b = this.buffered;
    this.buffered = NO_BYTES;
    return b;
  }

  /** Put bytes back in front (a redispatch resends what the failed server never answered). */
  unshift(bytes: Buffer): void {
    if (bytes.length > 0) this.buffered = this.buffered.length === 0 ? bytes : Buffer.concat([bytes, this.buffered]);
  }

  /** Stop reading the client (its bytes are relayed from here) and clear the timer. Idempotent. */
  dispose(): void {
    this.parsing = false;
    this.clearTimer();
    if (this.listening) this.client.off('data', this.onData);
    this.listening = false;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.parsing) this.drain();
    // While routing the client should be silent; keep reading (so a disconnect is noticed at
    // once) but never hold more than one startup packet's worth. Checked after parsing too: the
    // chunk that completed the StartupMessage may carry more, and the limit must not depend on
    // how TCP cut the bytes.
    if (!this.parsing && this.listening && this.buffered.length > MAX_STARTUP_PACKET) {
      this.handler.firstPacketsOverflow('client sent data before the server answered');
    }
  };

  private drain(): void {
    while (this.parsing && this.buffered.length > 0) {
      const p = readFirstPacket(this.buffered);
      if (p.kind === 'incomplete') {
        if (this.buffered.length > MAX_STARTUP_PACKET) this.handler.firstPacketsOverflow('startup packet too large');
        return;
      }
      // The packet's own bytes leave the buffer before the handler runs; a StartupMessage's
      // bytes stay (they are forwarded to the server as they are).
      if (p.kind === 'ssl' || p.kind === 'gssenc' || p.kind === 'cancel') this.buffered = this.buffered.subarray(p.size);
      if (!this.handler.firstPacket(p)) return;
    }
  }

  private clearTimer(): void {
    this.timer?.clear();
    this.timer = undefined;
  }
}
