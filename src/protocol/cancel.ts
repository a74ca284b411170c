/**
 * CancelRequest, the untyped packet a client sends on a *new* connection to interrupt a
 * query running on another one (PostgreSQL docs, "Message Flow / Canceling Requests in
 * Progress" and "Message Formats: CancelRequest"):
 *   Int32 16 | Int32 80877102 | Int32 process id | Int32 secret key
 * The server answers nothing and closes; a key that is not its own is silently ignored.
 */
import { CANCEL_REQUEST_CODE, CANCEL_REQUEST_SIZE } from './constants';
import { CancelKeyRangeError } from '../errors';

const INT32_MIN = -0x8000_0000;
const UINT32_MAX = 0xffff_ffff;

/**
 * Accepts each number as signed or unsigned 32-bit (both spell the same four bytes), so a
 * key read with readInt32BE and one read with readUInt32BE produce the same packet.
 */
export function cancelRequest(processId: number, secretKey: number): Buffer {
  const packet = Buffer.allocUnsafe(CANCEL_REQUEST_SIZE);
  packet.writeInt32BE(CANCEL_REQUEST_SIZE, 0);
  packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  packet.writeUInt32BE(toUint32('processId', processId), 8);
  packet.writeUInt32BE(toUint32('secretKey', secretKey), 12);
  return packet;
}

/**
 * Map key for the backend that issued a BackendKeyData, e.g. "12345:3735928559".
 * Normalised to unsigned so the signed and unsigned readings of one key collide, as they must.
 */
export function cancelKey(processId: number, secretKey: number): string {
  return `${toUint32('processId', processId)}:${toUint32('secretKey', secretKey)}`;
}

function toUint32(name: string, n: number): number {
  if (!Number.isInteger(n) || n < INT32_MIN || n > UINT32_MAX) {
    throw new CancelKeyRangeError(`cancel ${name} must be a 32-bit integer, got ${String(n)}`);
  }
  return n >>> 0;
}
