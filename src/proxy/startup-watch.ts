// The server's side of a session's startup: every chunk from the server goes to the client as it
// comes (with backpressure), after a StartupWatcher has looked at it for BackendKeyData (the
// cancel key) and the first ReadyForQuery (startup done: the session becomes a relay). A server
// whose answer is not the PostgreSQL protocol is caught here before its bytes reach the client.
import { StartupWatcher } from '../protocol/startup-watcher';
import type { ChunkWatcher, RelayEnd } from '../net/relay-socket';
import type { SaslPlusFilter } from '../protocol/sasl-plus-filter';

export interface StartupWatchEvents {
  keyData(processId: number, secretKey: number): void;
  /** The first ReadyForQuery has gone to the client: startup is over. */
  ready(): void;
  /**
   * The server's bytes are not PostgreSQL. `forwarded`: bytes of the server that reached the
   * client before this chunk's bad part; `atBoundary`: the client's stream ends at a message
   * boundary, so an ErrorResponse can still be sent to it.
   */
  malformed(reason: string, forwarded: number, atBoundary: boolean): void;
}

/** Starts watching (feeding `firstAnswer` first); returns the disposer of its listeners. */
export function watchStartup(
  backend: RelayEnd,
  client: RelayEnd,
  /** The FrameTracker of the server's side (or, with sessions.survive, the tap that feeds it). */
  serverFrames: ChunkWatcher,
  firstAnswer: Buffer,
  events: StartupWatchEvents,
  /** The server leg is TLS: take SCRAM-SHA-256-PLUS out of its mechanism list (sasl-plus-filter.ts). */
  saslFilter?: SaslPlusFilter,
): () => void {
  let forwarded = 0;
  let malformedReason = '';
  const watcher = new StartupWatcher({
    onBackendKeyData: (pid, secret) => events.keyData(pid, secret),
    onReadyForQuery: () => undefined,
    onError: (e) => {
      if (watcher.malformed) malformedReason = e.message ?? 'malformed backend startup stream';
    },
  });
  const onDrain = () => backend.resume();
  const dispose = () => {
    backend.off('data', onData);
    client.off('drain', onDrain);
  };
  function onData(received: Buffer): void {
    const chunk = saslFilter ? saslFilter.transform(received) : received;
    if (chunk.length === 0) return;
    const good = watcher.feed(chunk);
    if (watcher.malformed) {
      dispose();
      if (good > 0) client.write(chunk.subarray(0, good));
      forwarded += Math.max(0, good);
      events.malformed(malformedReason, forwarded, good >= 0);
      return;
    }
    serverFrames.feed(chunk);
    forwarded += chunk.length;
    if (!client.write(chunk)) backend.pause();
    if (watcher.done) {
      dispose();
      events.ready();
    }
  }
  client.on('drain', onDrain);
  backend.on('data', onData);
  onData(firstAnswer);
  if (!watcher.done) backend.resume();
  return dispose;
}
