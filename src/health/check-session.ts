// The kept check connection after pg has opened and authenticated it. pg stays in charge of
// connecting, TLS and authentication (trust, md5, SCRAM); once the server is ready for queries
// the socket is taken from pg's parser and the check's one round trip runs on it directly: a
// Query message prepared once, and the reply read with protocol/message-reader.ts. The session reports each
// round trip once, and a loss between round trips (crash, shutdown, reset, keepalive timeout)
// at once.
import type net from 'node:net';
import type { Client } from 'pg';
import { serialize } from 'pg-protocol';
import {
  MSG_DATA_ROW,
  MSG_ERROR_RESPONSE,
  MSG_PARAMETER_STATUS,
  MSG_READY_FOR_QUERY,
  MessageReader,
  readDataRow,
  readErrorResponse,
  readParameterStatus,
  type ServerError,
} from '../protocol/message-reader';

export type RoundTrip =
  | { readonly kind: 'row'; readonly values: readonly (string | null)[] }
  | { readonly kind: 'no-row' }
  | { readonly kind: 'server-error'; readonly error: ServerError }
  | { readonly kind: 'broken'; readonly error: unknown };

export interface CheckSessionEvents {
  /** The outcome of query(): called exactly once per query(), unless close() came first. */
  onReply(outcome: RoundTrip): void;
  /** The connection broke or the server said goodbye while no query was outstanding. */
  onLost(reason: string): void;
}

/** pg's message when the server closes a connection it did not ask to close; classify() knows it. */
const TERMINATED = 'Connection terminated unexpectedly';

export class CheckSession {
  private readonly stream: net.Socket;
  private readonly reader = new MessageReader();
  private readonly query: Buffer;
  private busy = false;
  private dead = false;
  private row: (string | null)[] | undefined;
  private serverError: ServerError | undefined;
  private standby: boolean | undefined;

  /**
   * `client` has just connected (its connect() resolved: ReadyForQuery seen, nothing unread);
   * `raw` is its TCP socket, the same as client.connection.stream unless TLS wraps it.
   * `hotStandby` is the server's in_hot_standby from the startup (PostgreSQL 14+), if it sent one.
   */
  constructor(
    private readonly client: Client,
    private readonly raw: net.Socket,
    query: Buffer,
    private readonly events: CheckSessionEvents,
    hotStandby?: boolean,
  ) {
    this.query = query;
    this.standby = hotStandby;
    this.stream = client.connection.stream as net.Socket;
    // pg's Parser is the only 'data' listener (TLSSocket and net.Socket keep none of their own).
    // pg's 'error' and 'close' listeners stay: they end in the Client, whose 'error' is muted.
    this.stream.removeAllListeners('data');
    this.stream.on('data', this.onData);
    this.stream.on('error', this.onBroken);
    this.stream.on('close', this.onClosed);
    if (raw !== this.stream) {
      raw.on('error', this.onBroken);
      raw.on('close', this.onClosed);
    }
  }

  /** Whether the connection can carry another round trip. */
  get usable(): boolean {
    return !this.dead && !this.busy;
  }

  /**
   * in_hot_standby as the server last reported it: undefined before PostgreSQL 14. The server
   * reports a change in a ParameterStatus before the ReadyForQuery of the next query (guc.c,
   * ReportChangedGUCOptions), not to an idle session: so after any round trip this is as fresh
   * as pg_is_in_recovery() would have been.
   */
  get hotStandby(): boolean | undefined {
    return this.standby;
  }

  /** Sends the check query (or `query`); the reply comes to events.onReply. */
  send(query: Buffer = this.query): void {
    this.busy = true;
    this.row = undefined;
    this.serverError = undefined;
    this.stream.write(query);
  }

  /**
   * Graceful: Terminate and a FIN (pg's end()); otherwise the socket is destroyed now. Either way
   * no event follows. Idempotent.
   */
  close(graceful: boolean): void {
    if (this.dead) return;
    this.dead = true;
    this.busy = false;
    this.reader.reset();
    if (graceful) {
      this.client.end().catch(() => {});
    } else {
      this.stream.destroy();
      this.raw.destroy();
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.dead) return;
    try {
      this.reader.feed(chunk, this.onMessage);
    } catch (err) {
      this.broke(err, `protocol error on the check connection: ${(err as Error).message}`);
    }
  };

  private readonly onMessage = (type: number, buf: Buffer, start: number, end: number): void => {
    if (this.dead) return;
    if (type === MSG_PARAMETER_STATUS) {
      const p = readParameterStatus(buf, start, end);
      if (p?.name === 'in_hot_standby') this.standby = p.value === 'on';
      return;
    }
    if (!this.busy) {
      // Between checks only a goodbye matters (e.g. FATAL 57P01 on shutdown); NoticeResponse
      // and notifications are skipped.
      if (type === MSG_ERROR_RESPONSE) {
        const e = readErrorResponse(buf, start, end);
        this.lose(`${e.message} (SQLSTATE ${e.code})`);
      }
      return;
    }
    if (type === MSG_DATA_ROW) {
      this.row ??= readDataRow(buf, start, end);
    } else if (type === MSG_ERROR_RESPONSE) {
      this.serverError ??= readErrorResponse(buf, start, end);
    } else if (type === MSG_READY_FOR_QUERY) {
      this.busy = false;
      const row = this.row;
      const error = this.serverError;
      this.row = undefined;
      this.serverError = undefined;
      this.events.onReply(
        error !== undefined ? { kind: 'server-error', error } : row !== undefined ? { kind: 'row', values: row } : { kind: 'no-row' },
      );
    }
  };

  private readonly onBroken = (err: Error): void => this.broke(err, err.message);

  private readonly onClosed = (): void => this.broke(new Error(TERMINATED), 'the server closed the check connection');

  /** The connection is unusable: report it as the reply in flight, or as a loss between checks. */
  private broke(err: unknown, reason: string): void {
    if (this.dead) return;
    if (!this.busy) return this.lose(reason);
    // A FATAL ErrorResponse right before the close says more than the close itself.
    const serverError = this.serverError;
    this.close(false);
    this.events.onReply(serverError !== undefined ? { kind: 'server-error', error: serverError } : { kind: 'broken', error: err });
  }

  private lose(reason: string): void {
    this.close(false);
    this.events.onLost(reason);
  }
}

/** The Query message (simple query protocol) for `sql`, built once per probe. */
export function queryMessage(sql: string): Buffer {
  return serialize.query(sql);
}
