// Channel binding cannot cross a proxy that terminates TLS: a client binds SCRAM to the TLS
// session it sees (pgwarden's certificate), the server to its own, and the proof fails. So
// while a session whose server leg is TLS starts, pgwarden removes SCRAM-SHA-256-PLUS from the
// server's AuthenticationSASL mechanism list (protocol docs, "SASL Authentication"): a client
// with channel_binding=prefer (libpq's default) then uses plain SCRAM-SHA-256, and one with
// channel_binding=require stops with libpq's own error ("channel binding is required, but
// server did not offer an authentication method that supports channel binding").
//
// A filter over the server's startup stream: every message passes through as it comes, except
// an Authentication message ('R'), which is held until complete (they are small; anything
// larger than MAX_HELD passes untouched) and rewritten when it is AuthenticationSASL (code 10).
const AUTHENTICATION = 0x52; // 'R'
const SASL = 10;
const PLUS = 'SCRAM-SHA-256-PLUS';
const MAX_HELD = 64 * 1024;
const HEADER = 5;

export class SaslPlusFilter {
  private readonly header = Buffer.alloc(HEADER);
  private headerFilled = 0;
  /** Body bytes of the current message still to come (0: reading a header). */
  private remaining = 0;
  private held: Buffer[] | undefined;
  /** A length word that makes no sense: stop looking (the startup watcher reports it). */
  private gaveUp = false;

  /** The bytes to forward for `chunk` (empty while an Authentication message is incomplete). */
  transform(chunk: Buffer): Buffer {
    if (this.gaveUp) return chunk;
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining === 0) {
        const n = Math.min(HEADER - this.headerFilled, chunk.length - i);
        chunk.copy(this.header, this.headerFilled, i, i + n);
        this.headerFilled += n;
        i += n;
        if (this.headerFilled < HEADER) break;
        this.headerFilled = 0;
        const length = this.header.readInt32BE(1);
        if (length < 4) {
          this.gaveUp = true;
          out.push(Buffer.from(this.header), chunk.subarray(i));
          break;
        }
        this.remaining = length - 4;
        const hold = this.header[0] === AUTHENTICATION && length <= MAX_HELD;
        this.held = hold ? [Buffer.from(this.header)] : undefined;
        if (!hold) out.push(Buffer.from(this.header));
        if (this.remaining === 0 && this.held) out.push(this.release());
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - i);
      const part = chunk.subarray(i, i + n);
      if (this.held) this.held.push(part);
      else out.push(part);
      this.remaining -= n;
      i += n;
      if (this.remaining === 0 && this.held) out.push(this.release());
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  private release(): Buffer {
    const message = Buffer.concat(this.held!);
    this.held = undefined;
    return withoutPlus(message);
  }
}

/**
 * An Authentication message, with SCRAM-SHA-256-PLUS taken out of a SASL mechanism list. Only a
 * well-formed list is rewritten (names, each NUL-terminated, then a zero byte that is the
 * message's last): a malformed one passes as the server sent it, for the client to refuse, rather
 * than being cut down to a well-formed message that hides the server's fault.
 */
export function withoutPlus(message: Buffer): Buffer {
  if (message.length < 9 || message.readInt32BE(5) !== SASL) return message;
  const names: string[] = [];
  let at = 9;
  for (;;) {
    const end = message.indexOf(0, at);
    if (end < 0) return message; // a name without its NUL, or no final zero
    if (end === at) {
      if (end !== message.length - 1) return message; // bytes after the list's end
      break;
    }
    names.push(message.toString('utf8', at, end));
    at = end + 1;
  }
  const kept = names.filter((n) => n !== PLUS);
  // Nothing to take out, or nothing would be left (a server always offers SCRAM-SHA-256 too).
  if (kept.length === names.length || kept.length === 0) return message;
  const list = Buffer.from(`${kept.join('\0')}\0\0`, 'utf8');
  const out = Buffer.alloc(HEADER + 4 + list.length);
  out[0] = AUTHENTICATION;
  out.writeInt32BE(4 + 4 + list.length, 1);
  out.writeInt32BE(SASL, 5);
  list.copy(out, 9);
  return out;
}
