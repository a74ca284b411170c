// Remembers which backend issued each BackendKeyData a session saw during startup, so a
// CancelRequest — which arrives on a brand-new client connection — reaches the one server
// that can act on it. Entries live exactly as long as their session.
import net from 'node:net';

export interface CancelTarget {
  readonly backend: string;
  readonly host: string;
  readonly port: number;
  /**
   * auth.mode proxy: the key is pgwarden's own (the client never saw the server's); the request
   * goes to the server with the server's key. Absent: the key is the server's own.
   */
  readonly serverKey?: { readonly processId: number; readonly secretKey: number };
}

export class CancelRegistry {
  private readonly keys = new Map<string, CancelTarget>();

  add(key: string, target: CancelTarget): void {
    this.keys.set(key, target);
  }

  /**
   * Points a key pgwarden issued at another server (a session that moved): only while the key
   * is registered, so a session that ended meanwhile is not brought back. True when updated.
   */
  retarget(key: string, target: CancelTarget): boolean {
    if (!this.keys.has(key)) return false;
    this.keys.set(key, target);
    return true;
  }

  delete(key: string): void {
    this.keys.delete(key);
  }

  get(key: string): CancelTarget | undefined {
    return this.keys.get(key);
  }

  get size(): number {
    return this.keys.size;
  }
}

/**
 * Deliver a 16-byte CancelRequest to one server and close. Resolves true when the bytes were
 * written; never rejects (a failed cancel must not hurt the proxy — the client retries).
 */
export function sendCancel(host: string, port: number, packet: Buffer, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    timer.unref();
    socket.on('error', () => done(false));
    socket.on('connect', () => {
      // The server closes the connection after reading the request; wait for that (or our
      // timeout) so the request is not cut off by an early destroy.
      socket.end(packet);
    });
    socket.on('close', () => done(true));
  });
}
