// The ParameterStatus values a session's client has been told ("Message Flow" › "Asynchronous
// Operations": the server reports GUC_REPORT settings at login and whenever they change), and
// what the state tracker needs from them: whether the SQL lexer may read the bytes as it does
// (client_encoding, standard_conforming_strings) and whether a text can be replayed as a
// JavaScript string.

const MAX_PARAMETERS = 256;

/** Client-only encodings whose multi-byte characters may hold ASCII bytes (";", "\\") the lexer would misread. */
const UNSAFE_ENCODINGS: ReadonlySet<string> = new Set(['SJIS', 'SHIFT_JIS_2004', 'BIG5', 'GBK', 'UHC', 'GB18030', 'JOHAB']);

export class ReportedParameters {
  readonly values = new Map<string, string>();

  /** ParameterStatus body: String name, String value. Returns a reason to stop following, if any. */
  onParameterStatus(body: Buffer): string | undefined {
    const n1 = body.indexOf(0);
    const n2 = n1 < 0 ? -1 : body.indexOf(0, n1 + 1);
    if (n2 < 0) return undefined;
    return this.set(body.toString('utf8', 0, n1), body.toString('utf8', n1 + 1, n2));
  }

  /** Bounded: a server reports a few dozen settings; past MAX_PARAMETERS new names are ignored. */
  set(name: string, value: string): string | undefined {
    if (!this.values.has(name) && this.values.size >= MAX_PARAMETERS) return undefined;
    this.values.set(name, value);
    if (name === 'client_encoding' && UNSAFE_ENCODINGS.has(value.toUpperCase())) return `client_encoding ${value}`;
    return undefined;
  }

  /** standard_conforming_strings, on unless the server said off (the default since 9.1). */
  standardStrings(): boolean {
    return this.values.get('standard_conforming_strings') !== 'off';
  }

  /**
   * Replay texts are JavaScript strings: non-ASCII bytes are safe only when the client speaks
   * UTF-8 (an unknown encoding counts as not UTF-8). Returns the reason when they are not.
   */
  unsafeText(buf: Buffer, start: number, end: number): string | undefined {
    const encoding = this.values.get('client_encoding');
    if (encoding?.toUpperCase() === 'UTF8') return undefined;
    for (let i = start; i < end; i++) if (buf[i]! >= 0x80) return `non-ASCII text to replay with client_encoding ${encoding ?? 'unknown'}`;
    return undefined;
  }
}
