// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, both sides, from a stored verifier
// instead of a password: pgwarden checks a client's proof against the verifier the server keeps
// in pg_authid, recovers the client's ClientKey from that proof, and later answers a server's
// challenge with the same ClientKey (the technique PgBouncer uses for SCRAM pass-through).
// Pure: Buffers and strings in, Buffers and strings out; no I/O, no timers, no logger.
//
// Verifier (pg_authid.rolpassword): SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>
//   StoredKey = H(ClientKey), ClientSignature = HMAC(StoredKey, AuthMessage),
//   ClientProof = ClientKey XOR ClientSignature, ServerSignature = HMAC(ServerKey, AuthMessage).
// PostgreSQL ignores the SCRAM user name (n=) and takes the startup packet's; it never sends or
// accepts an authzid; channel binding ('p=') is never offered here (it cannot cross a proxy).
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
const KEY_LENGTH = 32;
/** Far above any real verifier; bounds the work a fake exchange or a bad row can ask for. */
const MAX_ITERATIONS = 10_000_000;

export interface ScramVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

/** A SCRAM message that breaks the grammar; the text becomes the client's 08P01 message. */
export class ScramFormatError extends Error {
  override readonly name = 'ScramFormatError';
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function base64(text: string, what: string): Buffer {
  if (!B64.test(text) || text.length % 4 !== 0) throw new ScramFormatError(`malformed SCRAM message (${what} is not base64)`);
  return Buffer.from(text, 'base64');
}

/** Parses a pg_authid SCRAM verifier; undefined when `text` is not one. */
export function parseVerifier(text: string): ScramVerifier | undefined {
  const b64 = '([A-Za-z0-9+/]+={0,2})';
  const m = new RegExp(`^SCRAM-SHA-256\\$(\\d{1,9}):${b64}\\$${b64}:${b64}$`).exec(text);
  if (!m) return undefined;
  const iterations = Number(m[1]);
  const salt = Buffer.from(m[2]!, 'base64');
  const storedKey = Buffer.from(m[3]!, 'base64');
  const serverKey = Buffer.from(m[4]!, 'base64');
  if (iterations < 1 || iterations > MAX_ITERATIONS || salt.length === 0 || storedKey.length !== KEY_LENGTH || serverKey.length !== KEY_LENGTH) return undefined;
  return { iterations, salt, storedKey, serverKey };
}

/** The verifier PostgreSQL would store for `password` (tests, and the fake exchange's shape). */
export function makeVerifier(password: string, salt: Buffer, iterations: number): ScramVerifier & { readonly clientKey: Buffer } {
  const salted = pbkdf2Sync(password, salt, iterations, KEY_LENGTH, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  return { iterations, salt, clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

/** Printable ASCII except ',' (RFC 5802 "printable"). */
function isPrintable(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x2c) return false;
  }
  return true;
}

export function makeNonce(): string {
  return randomBytes(18).toString('base64');
}

// ---- the server's side (pgwarden authenticating a client) -----------------------------------

export interface ClientFirst {
  /** "n,," or "y,," : what the client-final's c= must carry back, base64'd. */
  readonly gs2Header: string;
  readonly bare: string;
  readonly clientNonce: string;
}

/** client-first-message: gs2-header client-first-message-bare (RFC 5802 section 7). */
export function parseClientFirst(text: string): ClientFirst {
  const flag = text[0];
  if (flag === 'p') throw new ScramFormatError('channel binding was not offered, but the client asked for it (SCRAM-SHA-256-PLUS is not available through pgwarden)');
  if ((flag !== 'n' && flag !== 'y') || text[1] !== ',') throw new ScramFormatError('malformed SCRAM message (unexpected channel-binding flag)');
  if (text[2] !== ',') throw new ScramFormatError('client uses authorization identity, but it is not supported');
  const gs2Header = text.slice(0, 3);
  const bare = text.slice(3);
  const attrs = bare.split(',');
  if (attrs[0] === undefined || !attrs[0].startsWith('n=')) throw new ScramFormatError('malformed SCRAM message (user name expected)');
  const r = attrs[1];
  if (r === undefined || !r.startsWith('r=') || !isPrintable(r.slice(2))) throw new ScramFormatError('malformed SCRAM message (nonce expected)');
  if (attrs.slice(2).some((a) => a.startsWith('m='))) throw new ScramFormatError('malformed SCRAM message (mandatory extension is not supported)');
  return { gs2Header, bare, clientNonce: r.slice(2) };
}

export function serverFirst(nonce: string, salt: Buffer, iterations: number): string {
  return `r=${nonce},s=${salt.toString('base64')},i=${iterations}`;
}

export interface ClientFinal {
  /** client-final-message-without-proof (part of the AuthMessage). */
  readonly withoutProof: string;
  readonly channelBinding: string;
  readonly nonce: string;
  readonly proof: Buffer;
}

/** client-final-message: c=…,r=…[,extensions],p=… (the proof comes last). */
export function parseClientFinal(text: string): ClientFinal {
  const at = text.lastIndexOf(',p=');
  if (at < 0) throw new ScramFormatError('malformed SCRAM message (proof expected)');
  const withoutProof = text.slice(0, at);
  const attrs = withoutProof.split(',');
  if (attrs[0] === undefined || !attrs[0].startsWith('c=')) throw new ScramFormatError('malformed SCRAM message (channel binding expected)');
  if (attrs[1] === undefined || !attrs[1].startsWith('r=')) throw new ScramFormatError('malformed SCRAM message (nonce expected)');
  const proof = base64(text.slice(at + 3), 'the proof');
  if (proof.length !== KEY_LENGTH) throw new ScramFormatError('malformed SCRAM message (malformed proof in client-final-message)');
  return { withoutProof, channelBinding: attrs[0].slice(2), nonce: attrs[1].slice(2), proof };
}

export function authMessage(clientFirstBare: string, serverFirstMessage: string, clientFinalWithoutProof: string): string {
  return `${clientFirstBare},${serverFirstMessage},${clientFinalWithoutProof}`;
}

/**
 * The client's proof against the verifier: the ClientKey it carries when H(ClientKey) is the
 * StoredKey, else undefined. Constant-time compare; the same work for a right and a wrong proof.
 */
export function recoverClientKey(v: Pick<ScramVerifier, 'storedKey'>, auth: string, proof: Buffer): Buffer | undefined {
  const clientKey = xor(proof, hmac(v.storedKey, auth));
  return timingSafeEqual(sha256(clientKey), v.storedKey) ? clientKey : undefined;
}

export function serverFinal(v: Pick<ScramVerifier, 'serverKey'>, auth: string): string {
  return `v=${hmac(v.serverKey, auth).toString('base64')}`;
}

// ---- the client's side (pgwarden logging in to a server with a recovered ClientKey) ---------

export interface ServerFirst {
  readonly nonce: string;
  readonly salt: Buffer;
  readonly iterations: number;
}

export function parseServerFirst(text: string, clientNonce: string): ServerFirst {
  const attrs = text.split(',');
  const r = attrs[0];
  const s = attrs[1];
  const i = attrs[2];
  if (r === undefined || !r.startsWith('r=') || s === undefined || !s.startsWith('s=') || i === undefined || !/^i=\d{1,9}$/.test(i)) {
    throw new ScramFormatError('malformed SCRAM server-first-message');
  }
  const nonce = r.slice(2);
  if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) throw new ScramFormatError('SCRAM server nonce does not extend the client nonce');
  return { nonce, salt: base64(s.slice(2), 'the salt'), iterations: Number(i.slice(2)) };
}

/** c=biws (base64 of "n,,": no channel binding, no authzid). */
export const NO_BINDING = 'c=biws';

export function clientProof(clientKey: Buffer, storedKey: Buffer, auth: string): Buffer {
  return xor(clientKey, hmac(storedKey, auth));
}

/** The server's v=: true when it proves the server knows the ServerKey. */
export function serverSignatureValid(text: string, serverKey: Buffer, auth: string): boolean {
  if (!text.startsWith('v=')) return false;
  let got: Buffer;
  try {
    got = base64(text.slice(2).split(',')[0]!, 'the server signature');
  } catch {
    return false;
  }
  const want = hmac(serverKey, auth);
  return got.length === want.length && timingSafeEqual(got, want);
}
