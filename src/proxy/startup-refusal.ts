// A server that answers a StartupMessage with 57P03 (cannot_connect_now: "the database system
// is shutting down", "… is starting up", "… not yet accepting connections") refuses the session
// before authentication, so nothing it said has to reach the client. pgwarden treats that answer
// like a refused connect: the session tries the next candidate or waits in the queue. A
// Patroni switchover is the common case — the old leader refuses new sessions while it shuts
// down, and the client would otherwise see the refusal although a new primary is moments away.
import { readErrorFields } from '../protocol/message-reader';
import { SqlState } from '../errors';

const ERROR_RESPONSE = 0x45; // 'E'

/** The server's message when `answer` starts with a whole 57P03 ErrorResponse; else undefined. */
export function cannotConnectNow(answer: Buffer): string | undefined {
  if (answer.length < 5 || answer[0] !== ERROR_RESPONSE) return undefined;
  const end = 1 + answer.readInt32BE(1);
  if (end > answer.length || end < 5) return undefined;
  const fields = readErrorFields(answer, 5, end);
  if (fields?.code !== SqlState.CANNOT_CONNECT_NOW) return undefined;
  return fields.message ?? 'cannot connect now';
}
