// `check: tcp`: a backend is healthy when it accepts a TCP connection (HAProxy's plain L4 check).
// The role cannot be detected this way, so it comes from the backend's configuration.
import net from 'node:net';
import { PhaseTimer } from './phase-timer';
import { outOfDescriptors, type DetectedRole, type FailureLayer, type Probe, type ProbeResult } from './types';

export function tcpProbe(host: string, port: number, timeoutMs: number, role: DetectedRole): Probe {
  return (signal) => connectOnce(host, port, timeoutMs, role, signal);
}

function connectOnce(host: string, port: number, timeoutMs: number, role: DetectedRole, signal: AbortSignal): Promise<ProbeResult> {
  const startedAt = performance.now();
  const elapsed = (): number => Math.round(performance.now() - startedAt);
  const timer = new PhaseTimer();
  timer.enter('connect');
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const socket = new net.Socket();
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ ...result, phases: timer.finish() });
    };
    const fail = (layer: FailureLayer, message: string): void => finish({ ok: false, layer, message, durationMs: elapsed() });
    const onAbort = (): void => fail('L4TOUT', `connect to ${host}:${port} aborted before it completed`);

    const deadline = setTimeout(() => fail('L4TOUT', `connect to ${host}:${port} timed out after ${timeoutMs} ms`), timeoutMs);
    deadline.unref();
    // Errors after we settled (e.g. a reset while closing) are expected and carry no news.
    socket.on('error', (err: NodeJS.ErrnoException) => fail(layerOf(err), err.message));
    socket.on('close', () => fail('L4CON', `connection to ${host}:${port} closed before it was established`));
    socket.once('connect', () => finish({ ok: true, role, durationMs: elapsed() }));

    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.connect({ host, port });
  });
}

/**
 * ETIMEDOUT (the kernel gave up on the SYN) is a connect timeout; everything else
 * (ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH, a DNS failure) means nobody accepted
 * the connection: HAProxy L4CON.
 */
function layerOf(err: NodeJS.ErrnoException): FailureLayer {
  if (outOfDescriptors(err.code)) return 'SOCKERR'; // pgwarden's own trouble: no verdict on the server
  return err.code === 'ETIMEDOUT' ? 'L4TOUT' : 'L4CON';
}
