// ServerLogin (contracts.ts): pgwarden logs in to a freshly connected server as the session's
// user with what it kept from authenticating the client itself (auth.mode proxy) — the session
// does it once, the mover again on another server. Sends the StartupMessage (protocol 3.0, the
// client's parameters), answers AuthenticationSASL with SCRAM-SHA-256 from the recovered
// ClientKey (never SCRAM-SHA-256-PLUS: channel binding cannot be replayed), AuthenticationMD5Password
// from the md5 hash, takes AuthenticationOk (trust), and resolves at the first ReadyForQuery.
// Layouts: protocol docs, "Message Formats" and "Message Flow / Start-up", "SASL Authentication".
import type net from 'node:net';
import { MessageReader, readErrorFields, readParameterStatus } from '../protocol/message-reader';
import { PgwardenError } from '../errors';
import type { LoginResult, LoginSecret, ServerLogin, StartupParams } from './contracts';
import * as scram from './scram';
import { md5Answer } from './client-auth';

const PROTOCOL_3_0 = 196608;

/**
 * The login failed. `sqlstate`/`message`: the server's ErrorResponse, or pgwarden's own for a
 * protocol problem or a lost connection. `retryable`: nothing the server said is about this
 * user (the connection was lost, 57P03 cannot_connect_now), so another server may do.
 */
export class ServerLoginError extends PgwardenError {
  declare readonly code: 'PGW_SERVER_LOGIN';
  constructor(
    readonly sqlstate: string,
    message: string,
    readonly retryable: boolean,
    /** The server sent this ErrorResponse (its text can go to the client as it is). */
    readonly fromServer: boolean,
  ) {
    super('PGW_SERVER_LOGIN', message);
  }
}

export function startupMessage(params: StartupParams): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of params) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeInt32BE(8 + body.length, 0);
  out.writeInt32BE(PROTOCOL_3_0, 4);
  body.copy(out, 8);
  return out;
}

/** A frontend message: Byte1 type, Int32 length, body. */
function frontend(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const R = 0x52;
const E = 0x45;
const S = 0x53;
const K = 0x4b;
const Z = 0x5a;

export const serverLogin: ServerLogin = (socket, params, secret) =>
  new Promise<LoginResult>((resolve, reject) => {
    const reader = new MessageReader();
    const parameters = new Map<string, string>();
    let processId = 0;
    let secretKey = 0;
    let settled = false;
    let sasl: { nonce: string; clientFirstBare: string; auth?: string; secret: Extract<LoginSecret, { kind: 'scram-sha-256' }> } | undefined;

    const finish = (err: ServerLoginError | undefined, result?: LoginResult) => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve(result!);
    };
    const protocol = (message: string) => finish(new ServerLoginError('08P01', message, false, false));
    const cannot = (message: string) => finish(new ServerLoginError('28000', message, false, false));

    const onAuth = (body: Buffer, start: number, end: number) => {
      if (end - start < 4) return protocol('malformed Authentication message from the server');
      const code = body.readInt32BE(start);
      const data = body.subarray(start + 4, end);
      switch (code) {
        case 0:
          return; // AuthenticationOk: ParameterStatus, BackendKeyData and ReadyForQuery follow
        case 5: {
          if (secret.kind !== 'md5') return cannot(`the server asks for an md5 password, but pgwarden holds a ${secret.kind} secret for user "${params.get('user')}"`);
          if (data.length !== 4) return protocol('malformed AuthenticationMD5Password from the server');
          socket.write(frontend('p', Buffer.from(`${md5Answer(secret.hash, data)}\0`, 'latin1')));
          return;
        }
        case 10: {
          const mechanisms = data.toString('latin1').split('\0').filter((m) => m !== '');
          if (!mechanisms.includes(scram.SCRAM_MECHANISM)) return cannot(`the server offers only ${mechanisms.join(', ')}; pgwarden can log in with SCRAM-SHA-256 only`);
          if (secret.kind !== 'scram-sha-256') return cannot(`the server asks for SCRAM-SHA-256, but pgwarden holds a ${secret.kind} secret for user "${params.get('user')}"`);
          const nonce = scram.makeNonce();
          // The user name is taken from the startup packet (n= is ignored by PostgreSQL).
          const clientFirstBare = `n=,r=${nonce}`;
          sasl = { nonce, clientFirstBare, secret };
          const first = Buffer.from(`n,,${clientFirstBare}`, 'latin1');
          const body2 = Buffer.alloc(scram.SCRAM_MECHANISM.length + 1 + 4 + first.length);
          body2.write(scram.SCRAM_MECHANISM, 0, 'latin1');
          body2.writeInt32BE(first.length, scram.SCRAM_MECHANISM.length + 1);
          first.copy(body2, scram.SCRAM_MECHANISM.length + 5);
          socket.write(frontend('p', body2));
          return;
        }
        case 11: {
          if (!sasl || sasl.auth !== undefined) return protocol('unexpected SASLContinue from the server');
          const sf = scram.parseServerFirst(data.toString('utf8'), sasl.nonce);
          const s = sasl.secret;
          if (sf.iterations !== s.iterations || !sf.salt.equals(s.salt)) {
            return cannot(`the server's SCRAM salt or iteration count for user "${params.get('user')}" differs from the one pgwarden authenticated the client with (the password was changed?)`);
          }
          const withoutProof = `${scram.NO_BINDING},r=${sf.nonce}`;
          sasl.auth = scram.authMessage(sasl.clientFirstBare, data.toString('utf8'), withoutProof);
          const proof = scram.clientProof(s.clientKey, s.storedKey, sasl.auth);
          socket.write(frontend('p', Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'latin1')));
          return;
        }
        case 12: {
          if (!sasl || sasl.auth === undefined) return protocol('unexpected SASLFinal from the server');
          if (!scram.serverSignatureValid(data.toString('utf8'), sasl.secret.serverKey, sasl.auth)) return protocol('the server\'s SCRAM signature is wrong: it does not know the password');
          return;
        }
        case 3:
          return cannot('the server asks for a cleartext password, which pgwarden does not have (auth.mode proxy keeps only the SCRAM ClientKey or the md5 hash)');
        default:
          return cannot(`the server asks for an authentication method pgwarden cannot answer (code ${code})`);
      }
    };

    const onMessage = (type: number, buf: Buffer, start: number, end: number) => {
      if (settled) return;
      switch (type) {
        case R:
          return onAuth(buf, start, end);
        case E: {
          const f = readErrorFields(buf, start, end);
          const sqlstate = f?.code ?? '08P01';
          // 57P03 cannot_connect_now (starting up, shutting down, in recovery …): another server may do.
          return finish(new ServerLoginError(sqlstate, f?.message ?? 'error without a message', sqlstate === '57P03', true));
        }
        case S: {
          const p = readParameterStatus(buf, start, end);
          if (p) parameters.set(p.name, p.value);
          return;
        }
        case K:
          if (end - start >= 8) {
            processId = buf.readInt32BE(start);
            secretKey = buf.readInt32BE(start + 4);
          }
          return;
        case Z:
          return finish(undefined, { processId, secretKey, parameters });
        default:
          return; // NoticeResponse, NegotiateProtocolVersion: nothing to act on
      }
    };
    function onData(chunk: Buffer): void {
      try {
        reader.feed(chunk, onMessage);
      } catch (err) {
        protocol(`the server's startup answer is not the PostgreSQL protocol: ${(err as Error).message}`);
      }
    }
    function onClose(): void {
      finish(new ServerLoginError('08006', 'the server closed the connection during the login', true, false));
    }
    function onError(err: NodeJS.ErrnoException): void {
      finish(new ServerLoginError('08006', `the server's connection failed during the login: ${err.code ?? err.message}`, true, false));
    }
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    if ((socket as net.Socket).destroyed) return onClose();
    socket.write(startupMessage(params));
    socket.resume();
  });
