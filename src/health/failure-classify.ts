// Where a check failed, named HAProxy style by layer (L4CON, L6TLS, L7AUTH, L7FULL …) from
// whatever the pg client threw: a server ErrorResponse by its SQLSTATE class, a socket error by
// errno, pg's own errors by their text. The layer is what an operator reads first.
import { ServerSqlState, SqlState } from '../errors';
import { outOfDescriptors, type FailureLayer } from './types';

export type Phase = 'connecting' | 'authenticating' | 'querying';

interface Classified {
  readonly layer: FailureLayer;
  readonly message: string;
}

/** pg's error when the server answers N to an SSLRequest (a server without ssl = on). */
export function serverRefusedTls(err: unknown): boolean {
  return err instanceof Error && err.message === 'The server does not support SSL connections';
}

/** Where did it fail? Server errors by SQLSTATE class, socket errors by errno, pg's own by text. */
export function classify(err: unknown, phase: Phase): Classified {
  const e = (err ?? {}) as { code?: unknown; message?: unknown; severity?: unknown };
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  const code = typeof e.code === 'string' ? e.code : undefined;

  // An ErrorResponse from the server carries a SQLSTATE (Appendix A, PostgreSQL Error Codes).
  if (code !== undefined && typeof e.severity === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    const withState = `${message} (SQLSTATE ${code})`;
    if (code.startsWith('28')) return { layer: 'L7AUTH', message: withState }; // invalid_authorization_specification, invalid_password
    // too_many_connections: max_connections (or the check role's CONNECTION LIMIT) reached. The
    // server is up and full: no verdict (types.ts, NO_VERDICT_LAYERS).
    if (code === SqlState.TOO_MANY_CONNECTIONS) return { layer: 'L7FULL', message: withState };
    if (code === ServerSqlState.QUERY_CANCELED) return { layer: 'L7TOUT', message: withState }; // query_canceled: statement_timeout
    return { layer: 'L7QUERY', message: withState }; // e.g. 57P03 cannot_connect_now, 3D000 database missing
  }
  if (code === 'ETIMEDOUT') return { layer: 'L4TOUT', message };
  if (outOfDescriptors(code)) return { layer: 'SOCKERR', message: `pgwarden cannot open a socket: ${message}` };
  if (code !== undefined && /^E[A-Z]+$/.test(code)) return { layer: 'L4CON', message }; // ECONNREFUSED, ECONNRESET, EHOSTUNREACH ...
  if (isTlsError(code, message)) return { layer: 'L6TLS', message };
  if (message === 'timeout expired') {
    // pg's connectionTimeoutMillis covers connect and authentication.
    return { layer: phase === 'connecting' ? 'L4TOUT' : 'L7TOUT', message: `connection timeout expired while ${phase}` };
  }
  if (message === 'Query read timeout') return { layer: 'L7TOUT', message: 'check query timed out' };
  if (/client password must be/.test(message)) {
    return { layer: 'L7AUTH', message: `the server asked for a password and none is configured for the check user (${message})` };
  }
  if (/password|SASL|SCRAM/i.test(message)) return { layer: 'L7AUTH', message };
  if (message.startsWith('Connection terminated')) {
    // The server closed the connection: a shutdown or a crash in progress.
    return { layer: phase === 'querying' ? 'L7QUERY' : 'L4CON', message: `${message} while ${phase}` };
  }
  return { layer: phase === 'connecting' ? 'L4CON' : 'L7QUERY', message };
}

function isTlsError(code: string | undefined, message: string): boolean {
  if (code !== undefined && /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/.test(code)) return true;
  return /\bSSL\b|\bTLS\b/.test(message);
}
