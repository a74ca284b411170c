// Rules of the `tls` section that involve more than one key: `mode: terminate` needs a
// certificate and its key; the keys about pgwarden's own TLS with clients mean something only
// under terminate, so under another mode they are refused (they would be ignored); a client CA
// goes with `client_cert: verify`; the servers' CA only where a server's certificate is
// checked. Pure, and like rules.ts it judges only values that parsed.

/** The same shape as rules.ts's Report (not imported: rules.ts imports this file). */
type Report = (path: readonly (string | number)[], message: string, hint?: string) => void;

type Mapping = Record<string, unknown>;

/** Keys about the TLS pgwarden itself does with clients. */
const TERMINATE_ONLY = ['cert_file', 'key_file', 'min_version', 'ca_file', 'client_cert', 'client'] as const;

/** Under passthrough the server does the TLS, so each key has a counterpart there. */
const UNDER_PASSTHROUGH: Readonly<Record<(typeof TERMINATE_ONLY)[number], string>> = {
  cert_file: "under passthrough the client's TLS goes through to the server, which shows its own certificate",
  key_file: "under passthrough the client's TLS goes through to the server, which shows its own certificate",
  min_version: "under passthrough the server's `ssl_min_protocol_version` applies",
  ca_file: 'under passthrough the server checks client certificates (`ssl_ca_file`, `clientcert=verify-ca` in pg_hba.conf)',
  client_cert: 'under passthrough the server checks client certificates (`clientcert=verify-ca` in pg_hba.conf)',
  client: 'under passthrough, refuse clients without TLS in the servers\' pg_hba.conf (`hostssl` lines only)',
};

/** `server` values that do not check the server's certificate (a value that did not parse is judged by itself). */
const SERVER_TRUSTS = new Set(['disable', 'prefer', 'require']);

export function tlsRules(tls: Mapping, report: Report): void {
  const mode = typeof tls.mode === 'string' ? tls.mode : undefined;
  if (mode === 'terminate') {
    terminateNeeds(tls, report);
  } else if (mode === 'passthrough' || mode === 'disable') {
    for (const key of TERMINATE_ONLY) {
      if (tls[key] === undefined) continue;
      const why = mode === 'passthrough' ? UNDER_PASSTHROUGH[key] : 'under `disable` no client gets TLS';
      report(['tls', key], `applies only to \`mode: terminate\` (here \`mode: ${mode}\`), so it would be ignored`, `${why}: remove \`${key}\`, or set \`mode: terminate\``);
    }
  }
  serverCa(tls, report);
}

function terminateNeeds(tls: Mapping, report: Report): void {
  if (tls.cert_file === undefined) {
    report(
      ['tls', 'cert_file'],
      'required key is missing when `mode` is `terminate`; expected the path of a PEM certificate',
      'pgwarden shows this certificate to clients (its chain may follow it in the same file): set `cert_file` and `key_file`',
    );
  }
  if (tls.key_file === undefined) {
    report(['tls', 'key_file'], "required key is missing when `mode` is `terminate`; expected the path of the certificate's private key (PEM)", 'set `cert_file` and `key_file`');
  }
  if (tls.client_cert === 'verify' && tls.ca_file === undefined) {
    report(
      ['tls', 'ca_file'],
      'required key is missing when `client_cert` is `verify`; expected the path of the CA that signs client certificates (PEM)',
      'clients must show a certificate signed by this CA',
    );
  } else if (tls.ca_file !== undefined && (tls.client_cert === undefined || tls.client_cert === 'off')) {
    report(['tls', 'ca_file'], 'is used only with `client_cert: verify`, so it would be ignored', 'set `client_cert: verify` to require client certificates signed by this CA, or remove `ca_file`');
  }
}

/** A CA for the servers' certificates means something only where they are checked. */
function serverCa(tls: Mapping, report: Report): void {
  const server = typeof tls.server === 'string' ? tls.server : undefined;
  if (tls.server_ca_file === undefined || server === undefined || !SERVER_TRUSTS.has(server)) return;
  const why =
    server === 'disable'
      ? "with `server: disable` pgwarden's connections to the servers are plain text"
      : // libpq checks the certificate under `require` when a root certificate file exists; a key that
        // changes what another key means is not copied.
        `\`${server}\` encrypts without checking the server's certificate (unlike libpq, not even when a CA is given)`;
  report(
    ['tls', 'server_ca_file'],
    `applies only to \`server: verify-ca\` or \`verify-full\` (here \`server: ${server}\`), so it would be ignored`,
    `${why}: set \`server: verify-full\` (or \`verify-ca\`) to check the servers' certificates against this CA, or remove \`server_ca_file\``,
  );
}
