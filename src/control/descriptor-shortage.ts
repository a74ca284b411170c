// pgwarden out of file descriptors (EMFILE: its own limit, ENFILE: the system's). Every accept,
// connect and check that fails for it is a sign of the same condition, and during a shortage
// they come by the thousand: the first is logged at once (error, `proxy.out_of_descriptors`),
// the rest only counted, and once none has come for `quietMs` one line says it is over and how
// many failed (warn, `proxy.descriptors_back`). Each failing session still gets its own
// ErrorResponse and session.end line, like any refused client.
import type { Clock } from '../clock';
import type { Logger } from '../logger';

export class DescriptorShortage {
  private failures = 0;
  private since = 0;
  private quiet?: { clear(): void };
  private lastAt = 0;

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly quietMs = 5_000,
  ) {}

  /** One failure for lack of descriptors; `where`: accept, connect to a backend, a check … */
  hit(where: string, code: string | undefined, detail?: string): void {
    const now = this.clock.now();
    this.failures++;
    this.lastAt = now;
    if (this.quiet) return;
    this.since = now;
    this.log.error(
      { event: 'proxy.out_of_descriptors', where, code, ...(detail !== undefined && { detail }) },
      `pgwarden is out of file descriptors${code === undefined ? '' : ` (${code})`} at ${where}: new clients are refused until some close; raise the limit (LimitNOFILE, ulimit -n) to 2 × the sessions you expect + slack`,
    );
    this.arm(this.quietMs);
  }

  /** Stop the timer (shutdown); a burst in progress is not reported as over. */
  close(): void {
    this.quiet?.clear();
    this.quiet = undefined;
  }

  private arm(ms: number): void {
    this.quiet = this.clock.setTimeout(() => {
      // Failures kept coming: wait for quietMs after the last one.
      const left = this.lastAt + this.quietMs - this.clock.now();
      if (left > 0) return this.arm(left);
      this.quiet = undefined;
      this.log.warn(
        { event: 'proxy.descriptors_back', failures: this.failures, durationMs: this.lastAt - this.since },
        `no failure for lack of file descriptors for ${this.quietMs} ms: ${this.failures} accepts, connects or checks failed for it`,
      );
      this.failures = 0;
    }, ms);
  }
}
