// The TLS files `tls` names, read once per load (startup, each reload; never per session), and
// the socket options made from them: pgwarden's own certificate for clients under
// `mode: terminate` (ServerTlsCredentials), and how pgwarden's connections to the servers do TLS
// (`tls.server`, libpq's sslmode words: ServerLegTls). A file that cannot be used is a
// TlsFilesError naming the key, the file and what to do; every problem is collected first.
//
// Server identity under verify-full: for a host name, SNI and the check are for that name; for an
// IP address there is no SNI (RFC 6066 section 3 forbids an IP there) and Node's
// tls.checkServerIdentity matches the address against the certificate's IP SANs (DNS names and
// the CN are not used for an IP), because `host` is set and `servername` is not.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext, type ConnectionOptions, type SecureContext, type TLSSocket, type TLSSocketOptions } from 'node:tls';
import type { ServerTlsMode, TlsConfig } from '../config/types';
import { TlsFilesError, type ConfigProblem } from '../errors';

/** ALPN protocol of PostgreSQL (PostgreSQL 17 direct TLS requires it; earlier clients send none). */
const ALPN_POSTGRESQL = 'postgresql';

const READ_FAILURES: Readonly<Record<string, { readonly what: string; readonly hint?: string }>> = {
  ENOENT: { what: 'no such file' },
  EACCES: { what: 'permission denied', hint: 'make it readable by the user pgwarden runs as' },
  EISDIR: { what: 'is a directory, not a file' },
};

const PEM_CERTIFICATE = '-----BEGIN CERTIFICATE-----';

/** Reads files and collects what is wrong with them, so one load reports every problem. */
class FileReader {
  readonly problems: ConfigProblem[] = [];

  problem(key: string, message: string, hint?: string): void {
    this.problems.push({ path: `tls.${key}`, message, ...(hint === undefined ? {} : { hint }) });
  }

  read(key: string, file: string): Buffer | undefined {
    try {
      return readFileSync(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      const known = Object.hasOwn(READ_FAILURES, code) ? READ_FAILURES[code] : undefined;
      this.problem(key, `cannot read ${file}: ${known?.what ?? (e as Error).message}`, known?.hint);
      return undefined;
    }
  }

  /** The first certificate of a PEM file (a chain or a CA bundle may follow it). */
  certificate(key: string, file: string, what: string): { pem: Buffer; first: X509Certificate } | undefined {
    const pem = this.read(key, file);
    if (pem === undefined) return undefined;
    if (!pem.includes(PEM_CERTIFICATE)) {
      this.problem(key, `${file} holds no PEM certificate (no "${PEM_CERTIFICATE}" line); expected ${what}`, `a DER file converts with \`openssl x509 -inform der -in ${file} -out ${file}.pem\``);
      return undefined;
    }
    try {
      return { pem, first: new X509Certificate(pem) };
    } catch (e) {
      this.problem(key, `the certificate in ${file} cannot be read: ${(e as Error).message}`);
      return undefined;
    }
  }

  privateKey(key: string, file: string): { pem: Buffer; parsed: KeyObject } | undefined {
    const pem = this.read(key, file);
    if (pem === undefined) return undefined;
    try {
      return { pem, parsed: createPrivateKey(pem) };
    } catch (e) {
      // PKCS#8 `BEGIN ENCRYPTED PRIVATE KEY` fails as "interrupted or cancelled", the older
      // `Proc-Type: 4,ENCRYPTED` form as ERR_MISSING_PASSPHRASE.
      if ((e as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE' || /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem.toString('latin1'))) {
        this.problem(key, `the key in ${file} is encrypted`, `pgwarden cannot ask for a passphrase: write it decrypted (\`openssl pkey -in ${file} -out plain.key\`) to a file only pgwarden's user can read`);
      } else {
        this.problem(key, `${file} holds no private key pgwarden can read: ${(e as Error).message}`, 'expected a PEM private key ("-----BEGIN PRIVATE KEY-----" or the RSA / EC forms)');
      }
      return undefined;
    }
  }

  /** Throws every problem found, if any. */
  done(): void {
    if (this.problems.length > 0) throw new TlsFilesError(this.problems);
  }
}

/** How pgwarden's own connections to the servers do TLS: health checks, failover statements, sessions under terminate. */
export class ServerLegTls {
  constructor(
    readonly mode: ServerTlsMode,
    /** server_ca_file's certificates; undefined: the system's CAs. */
    private readonly ca?: Buffer,
  ) {}

  /** Reads `tls.server_ca_file` (when a server's certificate is checked); throws TlsFilesError. */
  static load(tls: TlsConfig): ServerLegTls {
    const reader = new FileReader();
    const ca = readServerCa(tls, reader);
    reader.done();
    return new ServerLegTls(tls.server, ca);
  }

  /** Same mode and the same CA bytes: connections made with either are made alike. */
  equals(other: ServerLegTls): boolean {
    return this.mode === other.mode && (this.ca === other.ca || (this.ca !== undefined && other.ca !== undefined && this.ca.equals(other.ca)));
  }

  /**
   * Options for tls.connect (or pg's `ssl`) to the server at `host`; undefined for `disable`.
   * `prefer` gives the same options as `require`: falling back to plain text when the server
   * answers N is the caller's part.
   */
  options(host: string): ConnectionOptions | undefined {
    // SNI for a host name, as libpq sends it (sslsni=1); never for an IP address (RFC 6066 section 3).
    const sni = isIP(host) === 0 ? { servername: host } : {};
    const ca = this.ca === undefined ? {} : { ca: this.ca };
    switch (this.mode) {
      case 'disable':
        return undefined;
      case 'prefer':
      case 'require':
        return { ...sni, rejectUnauthorized: false };
      case 'verify-ca':
        // The chain is checked, the name is not.
        return { ...sni, ...ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
      case 'verify-full':
        // `host` is what Node checks the certificate against when there is no servername (an IP).
        return { ...sni, ...ca, host, rejectUnauthorized: true };
    }
  }
}

function readServerCa(tls: TlsConfig, reader: FileReader): Buffer | undefined {
  const verifies = tls.server === 'verify-ca' || tls.server === 'verify-full';
  if (!verifies || tls.serverCaFile === undefined) return undefined;
  return reader.certificate('server_ca_file', tls.serverCaFile, "the CA that signed the servers' certificates")?.pem;
}

/** pgwarden's certificate for clients under `mode: terminate`, and the server leg loaded with it. */
export class ServerTlsCredentials {
  private constructor(
    readonly context: SecureContext,
    /** The first certificate of cert_file (pgwarden's own): subject, validity, fingerprint. */
    readonly certificate: X509Certificate,
    readonly serverLeg: ServerLegTls,
    private readonly verifyClients: boolean,
  ) {}

  /**
   * Reads cert_file, key_file, ca_file (with client_cert: verify) and server_ca_file, checks that
   * the key is the certificate's, and builds the SecureContext (min_version is set there).
   * Throws TlsFilesError listing every problem.
   */
  static load(tls: TlsConfig): ServerTlsCredentials {
    const reader = new FileReader();
    if (tls.certFile === undefined) reader.problem('cert_file', 'is not set; `mode: terminate` needs a certificate');
    if (tls.keyFile === undefined) reader.problem('key_file', 'is not set; `mode: terminate` needs the certificate\'s key');
    const cert = tls.certFile === undefined ? undefined : reader.certificate('cert_file', tls.certFile, "pgwarden's certificate");
    const key = tls.keyFile === undefined ? undefined : reader.privateKey('key_file', tls.keyFile);
    const verifyClients = tls.clientCert === 'verify';
    const ca = verifyClients && tls.caFile !== undefined ? reader.certificate('ca_file', tls.caFile, 'the CA that signs client certificates') : undefined;
    if (verifyClients && tls.caFile === undefined) reader.problem('ca_file', 'is not set; `client_cert: verify` needs the CA of client certificates');
    if (cert !== undefined && key !== undefined && !cert.first.checkPrivateKey(key.parsed)) {
      reader.problem('key_file', `the key in ${tls.keyFile} does not belong to the certificate in ${tls.certFile}`, 'key_file must be the private key of the first certificate in cert_file');
    }
    const serverCa = readServerCa(tls, reader);
    reader.done();
    // Unreachable (a missing certificate or key was a problem above); it tells the compiler so.
    if (cert === undefined || key === undefined) throw new TlsFilesError(reader.problems);

    let context: SecureContext;
    try {
      context = createSecureContext({ cert: cert.pem, key: key.pem, minVersion: tls.minVersion, ...(ca === undefined ? {} : { ca: ca.pem }) });
    } catch (e) {
      // Whatever OpenSSL refuses beyond the checks above (a chain it cannot use, a weak key ...).
      throw new TlsFilesError([{ path: 'tls.cert_file', message: `OpenSSL refuses ${tls.certFile} with ${tls.keyFile}: ${(e as Error).message}` }]);
    }
    return new ServerTlsCredentials(context, cert.first, new ServerLegTls(tls.server, serverCa), verifyClients);
  }

  /**
   * Options for `new tls.TLSSocket(socket, options)` on a client's socket after pgwarden answered
   * `S` (or on a direct-TLS connection): pgwarden's certificate, a client certificate asked for
   * and required with client_cert: verify, and ALPN `postgresql`. min_version is in `context`.
   *
   * A TLSSocket made this way (not by a tls.Server) refuses a client that shows no certificate,
   * but NOT one whose certificate fails verification (another CA, expired): Node checks that only
   * for a tls.Server's sockets. Call clientCertificateError() on 'secure'.
   */
  options(): TLSSocketOptions {
    return {
      isServer: true,
      secureContext: this.context,
      requestCert: this.verifyClients,
      rejectUnauthorized: this.verifyClients,
      ALPNProtocols: [ALPN_POSTGRESQL],
    };
  }

  /**
   * Under client_cert: verify, why the client's certificate on `socket` (after its 'secure'
   * event) is refused: not signed by ca_file, expired ...; undefined when it is good or when
   * client certificates are off. This is the check a tls.Server makes on its own sockets
   * (onServerSocketSecure: the handle's verifyError()); without that method it fails closed.
   */
  clientCertificateError(socket: TLSSocket): Error | undefined {
    if (!this.verifyClients) return undefined;
    const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
    if (typeof handle?.verifyError !== 'function') return new Error('the client certificate cannot be verified (the TLS handle is gone or this Node.js has no verifyError())');
    return handle.verifyError() ?? undefined;
  }
}

/** Everything `tls` names on disk, as one load reads it: credentials only under terminate. */
export interface TlsFiles {
  readonly credentials?: ServerTlsCredentials;
  readonly serverLeg: ServerLegTls;
}

/** Reads every file `tls` names; throws TlsFilesError listing every problem. */
export function loadTlsFiles(tls: TlsConfig): TlsFiles {
  if (tls.mode !== 'terminate') return { serverLeg: ServerLegTls.load(tls) };
  const credentials = ServerTlsCredentials.load(tls);
  return { credentials, serverLeg: credentials.serverLeg };
}

/**
 * Options for one connection to the server at `host` (undefined for `server: disable`), reading
 * server_ca_file now: for connections made rarely (failover statements). Throws TlsFilesError.
 */
export function serverLegOptions(tls: TlsConfig, host: string): ConnectionOptions | undefined {
  return ServerLegTls.load(tls).options(host);
}
