// A hook's stdout and stderr, logged line by line within bounds: a line is cut at
// MAX_OUTPUT_LINE_CHARS and a run logs at most MAX_OUTPUT_PER_RUN_CHARS, so a chatty or binary
// -spewing hook cannot flood pgwarden's log or its memory. What is left out is counted.
import type { Readable } from 'node:stream';

export type Stream = 'stdout' | 'stderr';

/** Lines longer than this are cut (the rest is counted as dropped). */
export const MAX_OUTPUT_LINE_CHARS = 4096;
/** Output logged per run. */
export const MAX_OUTPUT_PER_RUN_CHARS = 256 * 1024;
/** The end of stderr kept for veto reasons and the timeline. */
export const STDERR_TAIL_CHARS = 1024;

export class OutputCapture {
  readonly dropped = { lines: 0, chars: 0 };
  stderrTail = '';
  #budget = MAX_OUTPUT_PER_RUN_CHARS;
  readonly #partial: Record<Stream, { text: string; cut: boolean }> = { stdout: { text: '', cut: false }, stderr: { text: '', cut: false } };

  constructor(readonly onLine: (stream: Stream, line: string) => void) {}

  attach(readable: Readable, stream: Stream): void {
    readable.setEncoding('utf8'); // decodes multi-byte characters split across chunks
    readable.on('data', (chunk: string) => this.#take(stream, chunk));
    readable.on('error', () => undefined); // destroyed at the end of the run; nothing to report
  }

  /** Emits what is left of unfinished lines (a last line without a newline). */
  flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const partial = this.#partial[stream];
      if (!partial.cut && partial.text !== '') this.#line(stream, partial.text);
      partial.text = '';
      partial.cut = false;
    }
  }

  #take(stream: Stream, chunk: string): void {
    const partial = this.#partial[stream];
    const pieces = chunk.split('\n');
    const last = pieces.pop() ?? '';
    for (const piece of pieces) {
      if (partial.cut) this.dropped.chars += piece.length; // the rest of a line already cut
      else this.#line(stream, partial.text + piece);
      partial.text = '';
      partial.cut = false;
    }
    if (partial.cut) {
      this.dropped.chars += last.length;
      return;
    }
    partial.text += last;
    if (partial.text.length > MAX_OUTPUT_LINE_CHARS) {
      this.dropped.chars += partial.text.length - MAX_OUTPUT_LINE_CHARS;
      this.#line(stream, `${partial.text.slice(0, MAX_OUTPUT_LINE_CHARS)}…`);
      partial.text = '';
      partial.cut = true;
    }
  }

  #line(stream: Stream, raw: string): void {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.length > MAX_OUTPUT_LINE_CHARS + 1) {
      this.dropped.chars += line.length - MAX_OUTPUT_LINE_CHARS;
      line = `${line.slice(0, MAX_OUTPUT_LINE_CHARS)}…`;
    }
    if (line.trim() === '') return;
    if (stream === 'stderr') this.stderrTail = `${this.stderrTail}${line}\n`.slice(-STDERR_TAIL_CHARS);
    if (line.length > this.#budget) {
      this.dropped.lines += 1;
      this.dropped.chars += line.length;
      return;
    }
    this.#budget -= line.length;
    this.onLine(stream, line);
  }
}
