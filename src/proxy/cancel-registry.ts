// Remembers which backend issued each BackendKeyData a session saw during startup, so a
// CancelRequest — which arrives on a brand-new client connection — reaches the one server
// that can act on it. Entries live exactly as long as their session.
import net from 'node:net';

export interface CancelTarget {
  readonly backend: string;
  readonly host: string;
  readonly port: number;
  /**
   * The key the server itself issued, when it is not the one the client holds: under auth.mode
   * proxy the client holds pgwarden's own key, and a session moved to a new server
   * (sessions.survive) keeps the key it was given, which now stands for this server's.
   */
  readonly serverKey?: { readonly processId: number; readonly secretKey: number };
}

export class CancelRegistry {
  private readonly keys = new Map<string, CancelTarget>();

  /** Also replaces the target of a key already known (a session that moved). */
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
