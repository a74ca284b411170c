// pgwarden's side of a client's authentication under auth.mode proxy, as a pure exchange: the
// session feeds it the client's authentication messages ('p': SASLInitialResponse, SASLResponse,
// PasswordMessage) and sends what it returns. It ends with the LoginSecret pgwarden keeps to log
// in to servers as that user, or with the refusal PostgreSQL itself would send.
//
// Refusals follow PostgreSQL (src/backend/libpq/auth.c, auth-scram.c): a wrong password and an
// unknown user both get FATAL 28P01 `password authentication failed for user "X"`, and an
// unknown user goes through a whole SCRAM exchange first, with a salt made up from the user name
// (the same salt every time, as PostgreSQL's scram_mock_salt) and made-up keys, so neither the
// messages nor the work done tell the two apart. Malformed SASL messages get 08P01, as there.
// Layouts: protocol docs, "Message Formats" (AuthenticationSASL …) and "SASL Authentication".
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { LoginSecret } from './contracts';
import * as scram from './scram';

/** What auth.query found for the user. */
export type StoredSecret =
  | { readonly kind: 'scram-sha-256'; readonly verifier: scram.ScramVerifier }
  | { readonly kind: 'md5'; readonly hash: string }
  /** No such role (or it may not log in): refused after a fake SCRAM exchange. */
  | { readonly kind: 'unknown-user' };

export type AuthResult =
  | { readonly ok: true; readonly secret: LoginSecret }
  | { readonly ok: false; readonly sqlstate: string; readonly message: string };

export interface AuthStep {
  /** Bytes for the client (one or more whole backend messages). */
  readonly send?: Buffer;
  /** The exchange is over. */
  readonly result?: AuthResult;
}

const AUTH_OK = 0;
const AUTH_MD5 = 5;
const AUTH_SASL = 10;
const AUTH_SASL_CONTINUE = 11;
const AUTH_SASL_FINAL = 12;
const PASSWORD_MESSAGE = 0x70; // 'p'
/** PostgreSQL's SCRAM_DEFAULT_ITERATIONS: what a fake exchange for an unknown user shows. */
const MOCK_ITERATIONS = 4096;

/** Authentication request 'R': Int32 code, then the method's data. */
export function authenticationMessage(code: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(9 + data.length);
  out[0] = 0x52;
  out.writeInt32BE(8 + data.length, 1);
  out.writeInt32BE(code, 5);
  data.copy(out, 9);
  return out;
}

export const AUTHENTICATION_OK = authenticationMessage(AUTH_OK);

export function failedFor(user: string): AuthResult {
  return { ok: false, sqlstate: '28P01', message: `password authentication failed for user "${user}"` };
}

function malformed(message: string): AuthStep {
  return { result: { ok: false, sqlstate: '08P01', message } };
}

function cString(buf: Buffer, start: number): { value: string; next: number } | undefined {
  const nul = buf.indexOf(0, start);
  return nul < 0 ? undefined : { value: buf.toString('utf8', start, nul), next: nul + 1 };
}

/** One client's authentication. `mockKey`: a per-process secret that makes up unknown users' salts. */
export class ClientAuthExchange {
  private state: 'start' | 'sasl-initial' | 'sasl-final' | 'md5' | 'done' = 'start';
  private verifier: scram.ScramVerifier;
  private readonly real: boolean;
  private md5Salt?: Buffer;
  private clientFirst?: scram.ClientFirst;
  private serverFirst?: string;
  private nonce?: string;

  constructor(
    private readonly user: string,
    private readonly stored: StoredSecret,
    mockKey: Buffer,
  ) {
    this.real = stored.kind === 'scram-sha-256';
    this.verifier = stored.kind === 'scram-sha-256' ? stored.verifier : mockVerifier(user, mockKey);
  }

  /** The first request to the client: AuthenticationSASL (SCRAM-SHA-256 only) or AuthenticationMD5Password. */
  start(): Buffer {
    if (this.stored.kind === 'md5') {
      this.state = 'md5';
      this.md5Salt = randomBytes(4);
      return authenticationMessage(AUTH_MD5, this.md5Salt);
    }
    this.state = 'sasl-initial';
    return authenticationMessage(AUTH_SASL, Buffer.from(`${scram.SCRAM_MECHANISM}\0\0`, 'latin1'));
  }

  /** One whole client message (type byte, body without the length). */
  receive(type: number, body: Buffer): AuthStep {
    if (type !== PASSWORD_MESSAGE) {
      // PostgreSQL: "expected SASL response, got message type %d" / "expected password response …".
      const what = this.state === 'md5' ? 'password' : 'SASL';
      this.state = 'done';
      return malformed(`expected ${what} response, got message type ${type}`);
    }
    try {
      switch (this.state) {
        case 'md5':
          return this.md5Response(body);
        case 'sasl-initial':
          return this.saslInitial(body);
        case 'sasl-final':
          return this.saslFinal(body);
        default:
          return malformed('unexpected authentication message');
      }
    } catch (err) {
      this.state = 'done';
      if (err instanceof scram.ScramFormatError) return malformed(err.message);
      throw err;
    }
  }

  private md5Response(body: Buffer): AuthStep {
    this.state = 'done';
    const s = cString(body, 0);
    if (s === undefined || s.next !== body.length) return malformed('invalid password packet size');
    if (this.stored.kind !== 'md5') return { result: failedFor(this.user) };
    const want = Buffer.from(md5Answer(this.stored.hash, this.md5Salt!), 'latin1');
    const got = Buffer.from(s.value, 'latin1');
    const ok = got.length === want.length && timingSafeEqual(got, want);
    return { result: ok ? { ok: true, secret: { kind: 'md5', hash: this.stored.hash } } : failedFor(this.user) };
  }

  /** SASLInitialResponse: String mechanism, Int32 length (-1: none), the client-first-message. */
  private saslInitial(body: Buffer): AuthStep {
    const mech = cString(body, 0);
    if (mech === undefined || body.length < mech.next + 4) return malformed('malformed SASLInitialResponse');
    if (mech.value !== scram.SCRAM_MECHANISM) {
      this.state = 'done';
      return malformed('client selected an invalid SASL authentication mechanism');
    }
    const length = body.readInt32BE(mech.next);
    if (length < 0 || mech.next + 4 + length !== body.length) return malformed('malformed SASLInitialResponse');
    const first = scram.parseClientFirst(body.toString('utf8', mech.next + 4));
    this.clientFirst = first;
    this.nonce = first.clientNonce + scram.makeNonce();
    this.serverFirst = scram.serverFirst(this.nonce, this.verifier.salt, this.verifier.iterations);
    this.state = 'sasl-final';
    return { send: authenticationMessage(AUTH_SASL_CONTINUE, Buffer.from(this.serverFirst, 'latin1')) };
  }

  private saslFinal(body: Buffer): AuthStep {
    this.state = 'done';
    const final = scram.parseClientFinal(body.toString('utf8'));
    const cbind = Buffer.from(this.clientFirst!.gs2Header, 'latin1').toString('base64');
    if (final.channelBinding !== cbind) return malformed('SCRAM channel binding check failed');
    if (final.nonce !== this.nonce) return malformed('unexpected SCRAM nonce');
    const auth = scram.authMessage(this.clientFirst!.bare, this.serverFirst!, final.withoutProof);
    const clientKey = scram.recoverClientKey(this.verifier, auth, final.proof);
    if (clientKey === undefined || !this.real) return { result: failedFor(this.user) };
    const v = this.verifier;
    const secret: LoginSecret = { kind: 'scram-sha-256', clientKey, storedKey: v.storedKey, serverKey: v.serverKey, salt: v.salt, iterations: v.iterations };
    return {
      send: authenticationMessage(AUTH_SASL_FINAL, Buffer.from(scram.serverFinal(v, auth), 'latin1')),
      result: { ok: true, secret },
    };
  }
}

/** md5 challenge answer: "md5" + md5(hex(md5(password + user)) + salt); `hash` is pg_authid's "md5…". */
export function md5Answer(hash: string, salt: Buffer): string {
  return 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(hash.slice(3), 'latin1'), salt])).digest('hex');
}

/** A made-up verifier for an unknown user: the same salt for the same name (so repeated tries look like a real role), keys nobody knows. */
function mockVerifier(user: string, mockKey: Buffer): scram.ScramVerifier {
  const salt = createHmac('sha256', mockKey).update(`salt:${user}`).digest().subarray(0, 16);
  return { iterations: MOCK_ITERATIONS, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}
