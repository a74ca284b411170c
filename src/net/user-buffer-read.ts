// The one read buffer of the process (see net/relay-socket.ts for why one buffer serves every
// socket), and a way to give it to a socket Node made without the `onread` option: a TLSSocket
// that wraps an existing socket ignores that option, but reads into a user buffer the same way
// once the two fields `onread` would have set are on it and its handle is told to use the buffer.
// Those fields are Node's internal symbols, found once by their descriptions on a socket made
// with `onread`; a Node.js without them (or without useUserBuffer) keeps its 'data' events.
import net from 'node:net';

export const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Called with the bytes read (the first n of buf); false stops the reads. */
export type SharedReadCallback = (n: number, buf: Buffer) => boolean;

interface UserBufferHandle {
  useUserBuffer?(buf: Uint8Array): void;
}

const fields = onreadFields();

function onreadFields(): { buffer: symbol; callback: symbol; generator: symbol } | undefined {
  const probe = new net.Socket({ onread: { buffer: Buffer.alloc(1), callback: () => true } } as net.SocketConstructorOpts);
  const named = (d: string) => Object.getOwnPropertySymbols(probe).find((s) => s.description === d);
  const buffer = named('kBuffer');
  const callback = named('kBufferCb');
  const generator = named('kBufferGen');
  probe.destroy();
  return buffer && callback && generator ? { buffer, callback, generator } : undefined;
}

/**
 * Make `socket`'s later reads call `callback` with the shared buffer instead of pushing chunks
 * into its stream. Bytes the stream already holds still come out as 'data' events. Returns
 * false (and changes nothing) where this Node.js cannot do it.
 */
export function readIntoSharedBuffer(socket: net.Socket, callback: SharedReadCallback): boolean {
  const handle = (socket as unknown as { _handle: UserBufferHandle | null })._handle;
  if (fields === undefined || handle === null || typeof handle.useUserBuffer !== 'function') return false;
  const s = socket as unknown as Record<symbol, unknown>;
  if (s[fields.buffer] === SHARED_READ_BUFFER) return true;
  s[fields.buffer] = SHARED_READ_BUFFER;
  s[fields.callback] = callback;
  s[fields.generator] = null;
  handle.useUserBuffer(SHARED_READ_BUFFER);
  return true;
}
