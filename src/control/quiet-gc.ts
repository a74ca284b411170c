// After a burst of new sessions — a connection storm, a pool refilling after a failover — the
// heap is full of the burst's garbage (startup packets, promises, timers of sessions that are
// now idle); after a burst of closed ones (a pool drained, an application restarted) it is
// full of the closed sessions. V8 collects it only when allocation pushes it to, and an idle
// proxy hardly allocates, so RSS would stay up by ~10 kB per session, for hours. When the
// burst is over (no session opened or closed for `quietMs`) one full collection returns that
// memory: measured with 1,000 idle sessions, RSS per session drops from 10–19 kB towards what
// the sessions hold (see bench/README.md, "Memory"). It runs once per burst, never during one,
// and takes a few ms.
//
// V8's gc() is reached through its own --expose-gc flag, set at run time; if that ever stops
// working, nothing happens but the memory staying up.
import v8 from 'node:v8';
import { realClock, type Clock } from '../clock';
import { v8Gc, type GcFunction } from '../metrics/v8-gc';

/** Sessions opened or closed since the last collection before a quiet spell is worth one. */
const BURST = 200;

export class QuietGc {
  private readonly gc: GcFunction | undefined = v8Gc();
  private sessions = 0;
  private timer?: { clear(): void };
  /** Clock time of the last session opened or closed in the current burst. */
  private lastActivity = 0;

  constructor(
    private readonly quietMs = 5_000,
    private readonly onCollect?: (sessions: number, ms: number) => void,
    /** Time for the quiet spell (a FakeClock in tests); its timers are unref()'d. */
    private readonly clock: Clock = realClock,
  ) {}

  /** A session was opened: maybe a burst; collect once it has been quiet for quietMs. */
  sessionOpened(): void {
    this.counted();
  }

  /** A session ended: a mass disconnect leaves as much garbage as a connection storm. */
  sessionClosed(): void {
    this.counted();
  }

  private counted(): void {
    if (this.gc === undefined || ++this.sessions < BURST) return;
    this.collectWhenQuiet();
  }

  /** Start-up (modules, config, first checks) is a burst of its own. */
  started(): void {
    if (this.gc !== undefined) this.collectWhenQuiet();
  }

  private collectWhenQuiet(): void {
    // One timer per burst, not one per session: activity only moves lastActivity, and the timer,
    // when it fires, waits out the rest of the quiet spell if there was activity meanwhile.
    this.lastActivity = this.clock.now();
    if (!this.timer) this.armFor(this.quietMs);
  }

  private armFor(ms: number): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      const quietFor = this.clock.now() - this.lastActivity;
      if (quietFor < this.quietMs) this.armFor(this.quietMs - quietFor);
      else this.collect();
    }, ms);
  }

  stop(): void {
    this.timer?.clear();
    this.timer = undefined;
  }

  private collect(): void {
    const sessions = this.sessions;
    this.sessions = 0;
    const started = performance.now();
    try {
      // 'last-resort' is V8's memory-reducing full collection (it also releases the emptied
      // pages); a plain gc() frees the objects but leaves RSS where it was.
      this.gc!({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    } catch {
      return;
    }
    this.onCollect?.(sessions, performance.now() - started);
  }
}

/**
 * V8 grows its young generation up to 16 MiB semispaces when a burst leaves many survivors
 * (opening a thousand sessions does), and never gives those pages back: ~18 MiB of RSS for good
 * after the first storm, more than a thousand idle sessions hold. A proxy's garbage is short-
 * lived per-chunk objects that a small young generation collects just as well, so it stays at
 * its initial size. (--max-semi-space-size only works on the command line; the growth factor is
 * read at each growth, so it can be set here.)
 */
export function keepYoungGenerationSmall(): void {
  try {
    v8.setFlagsFromString('--semi-space-growth-factor=1');
  } catch {
    /* an unknown flag in some future V8: the default growth stays */
  }
}
