// The few messages pgwarden writes itself when it logs a session in to a new server and rebuilds
// its state there (sessions.survive, issue 19): StartupMessage, Query, Parse, Sync — and the one
// backend message it sends to a client after a move, ParameterStatus. Layouts from the
// PostgreSQL docs, "Frontend/Backend Protocol" › "Message Formats". Pure: Buffers only.
import { PROTOCOL_MAJOR } from './constants';

/** StartupMessage (protocol 3.0): Int32 length, Int32 196608, name/value C strings, a final 0. */
export function startupMessage(params: ReadonlyMap<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of params) parts.push(cString(name), cString(value));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const head = Buffer.allocUnsafe(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(PROTOCOL_MAJOR << 16, 4);
  return Buffer.concat([head, body]);
}

/** Query ('Q'): the SQL as one C string. */
export function queryMessage(sql: string): Buffer {
  return typed(0x51, cString(sql));
}

/** Parse ('P'): statement name, query, Int16 count and the parameter type OIDs. */
export function parseMessage(name: string, query: string, paramTypes: readonly number[]): Buffer {
  const types = Buffer.allocUnsafe(2 + 4 * paramTypes.length);
  types.writeInt16BE(paramTypes.length, 0);
  paramTypes.forEach((oid, i) => types.writeUInt32BE(oid >>> 0, 2 + 4 * i));
  return typed(0x50, Buffer.concat([cString(name), cString(query), types]));
}

/** Sync ('S'): ends an extended-query exchange; the server answers ReadyForQuery. */
export function syncMessage(): Buffer {
  return typed(0x53, Buffer.alloc(0));
}

/** ParameterStatus ('S', backend): name and value as C strings. */
export function parameterStatusMessage(name: string, value: string): Buffer {
  return typed(0x53, Buffer.concat([cString(name), cString(value)]));
}

function typed(type: number, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = type;
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

function cString(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}
