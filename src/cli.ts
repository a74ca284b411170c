#!/usr/bin/env node
// pgwarden command line: run the proxy, check a config, the demo, the database-host agent, and
// the operator verbs that talk to a running pgwarden's admin API.
// Exit codes: 0 clean stop / success, 2 bad usage, config or TLS files, 1 runtime failure.
import { parseArgs } from 'node:util';
import { loadConfigFile } from './config/load';
import { ConfigError, TlsFilesError } from './errors';
import { describeConfig } from './config/describe';
import type { Config, HostConfig } from './config/types';
import { createLogger } from './logger';
import { App } from './app';
import { runDemo } from './demo';
import { runAdminVerb, type AdminVerb } from './admin/client';
import { runAgent } from './agent/server';
import { installProcessGuard } from './process-guard';
import { loadTlsFiles, type TlsFiles } from './net/tls-credentials';

const USAGE = `usage:
  pgwarden --config FILE                     run the proxy (SIGHUP reloads the config)
  pgwarden check --config FILE               validate a config and print what it would use
  pgwarden demo [--rw-port 6432] [--ro-port 6433] [--admin-port 8404]
                                             a throwaway primary + two replicas behind pgwarden
  pgwarden status   --config FILE            the running proxy's backends and listeners
  pgwarden drain    NAME --config FILE       no new sessions for a backend (existing stay)
  pgwarden maint    NAME --config FILE       no traffic at all (sessions closed)
  pgwarden ready    NAME --config FILE       back to normal (also clears a fence)
  pgwarden switchover --to NAME --config FILE   planned switchover to a replica
  pgwarden reload   --config FILE            re-read the running proxy's config
  pgwarden agent --listen 0.0.0.0:5555 [--config FILE]
                                             HAProxy agent-check on a database host
  pgwarden --help | --version

Operator verbs find the admin API (admin.bind) and its token (admin.token / token_env, or the
PGWARDEN_ADMIN_TOKEN environment variable) in the config file; --admin HOST:PORT overrides.`;

const VERBS = ['status', 'drain', 'maint', 'ready', 'switchover', 'reload'] as const;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        'rw-port': { type: 'string' },
        'ro-port': { type: 'string' },
        'admin-port': { type: 'string' },
        to: { type: 'string' },
        admin: { type: 'string' },
        listen: { type: 'string' },
      },
    });
  } catch (e) {
    return usage((e as Error).message);
  }
  const { values, positionals } = parsed;
  const command = positionals[0] ?? 'run';
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${require('../package.json').version}\n`);
    return 0;
  }
  if (command === 'demo') return demo([values['rw-port'], values['ro-port'], values['admin-port']], positionals);
  if (command === 'agent') return agent(values.listen, values.config, positionals);
  if ((VERBS as readonly string[]).includes(command)) return verb(command as AdminVerb, positionals, values);
  if (positionals.length > 1 || !['run', 'check'].includes(command)) return usage(`unknown command ${positionals.join(' ')}`);
  if (!values.config) return usage('--config FILE is required');
  const config = readConfig(values.config);
  if (typeof config === 'number') return config;
  if (command === 'check') return check(config);
  return run(config, values.config);
}

/** What the config says, and that the TLS files it names can be used (exit 2 otherwise, like a bad config). */
function check(config: Config): number {
  let files: TlsFiles;
  try {
    files = loadTlsFiles(config.tls);
  } catch (e) {
    if (!(e instanceof TlsFilesError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return 2;
  }
  const cert = files.credentials?.certificate;
  const certLine = cert === undefined ? [] : [`tls certificate: ${oneLine(cert.subject)}, issued by ${oneLine(cert.issuer)}, valid until ${cert.validTo}`];
  process.stdout.write(`${[describeConfig(config), ...certLine].join('\n')}\n`);
  return 0;
}

/** X509Certificate writes a subject one attribute a line. */
function oneLine(name: string): string {
  return name.split('\n').join(', ');
}

async function run(config: Config, path: string): Promise<number> {
  const log = createLogger(config.logging.level, config.logging.format);
  installProcessGuard(log);
  let app: App;
  try {
    app = new App(config, log, { loadConfig: () => loadConfigFile(path) });
  } catch (e) {
    // The certificate, key or CAs config.tls names: as bad as a bad config, and said the same way.
    if (!(e instanceof TlsFilesError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return 2;
  }
  try {
    await app.start();
  } catch (e) {
    log.fatal({ event: 'startup.failed', err: (e as Error).message }, (e as Error).message);
    log.flush();
    process.stderr.write(`pgwarden: ${(e as Error).message}\n`);
    return 1;
  }
  process.on('SIGHUP', () => {
    log.info({ event: 'config.reload_requested', signal: 'SIGHUP' }, `SIGHUP: reloading ${path}`);
    void app.reload();
  });
  return new Promise((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) {
        log.warn({ event: 'shutdown.forced', signal: sig }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      log.info({ event: 'shutdown.begin', signal: sig }, `${sig}: stopping (shutdown_timeout ${app.config.proxy.shutdownTimeout} ms)`);
      app.stop().then(() => {
        log.info({ event: 'shutdown.done' }, 'stopped');
        resolve(0);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

function demo(args: (string | undefined)[], positionals: string[]): Promise<number> | number {
  if (positionals.length > 1) return usage(`unexpected argument ${positionals[1]}`);
  const [rw, ro, admin] = args.map((v, i) => (v === undefined ? [6432, 6433, 8404][i] : Number(v)));
  if (![rw, ro, admin].every((p) => Number.isInteger(p) && p > 0 && p < 65536)) return usage('--rw-port, --ro-port and --admin-port take a port number (1-65535)');
  return runDemo({ rwPort: rw, roPort: ro, adminPort: admin });
}

/** Default agent thresholds when no config names them: a host that is busy, full or swapping. */
const AGENT_DEFAULTS: HostConfig['thresholds'] = {
  cpu: { above: 80, for: 30_000 },
  memory: { above: 85, for: 30_000 },
  disk: { above: 90, for: 30_000 },
};

function agent(listen: string | undefined, configPath: string | undefined, positionals: string[]): Promise<number> | number {
  if (positionals.length > 1) return usage(`unexpected argument ${positionals[1]}`);
  if (!listen) return usage('agent needs --listen HOST:PORT (e.g. 0.0.0.0:5555)');
  let thresholds = AGENT_DEFAULTS;
  let interval: number | undefined;
  let level: Config['logging']['level'] = 'info';
  let format: Config['logging']['format'] = 'json';
  if (configPath) {
    const config = readConfig(configPath);
    if (typeof config === 'number') return config;
    if (Object.keys(config.host.thresholds).length > 0) thresholds = config.host.thresholds;
    interval = config.host.interval;
    level = config.logging.level;
    format = config.logging.format;
  }
  const log = createLogger(level, format);
  installProcessGuard(log);
  return runAgent(listen, thresholds, log, interval);
}

async function verb(name: AdminVerb, positionals: string[], values: { config?: string; to?: string; admin?: string }): Promise<number> {
  const needsBackend = name === 'drain' || name === 'maint' || name === 'ready';
  const backend = positionals[1];
  if (needsBackend && (!backend || positionals.length > 2)) return usage(`${name} takes one backend name`);
  if (!needsBackend && positionals.length > 1) return usage(`unexpected argument ${positionals[1]}`);
  if (name === 'switchover' && !values.to) return usage('switchover needs --to NAME');
  let target: { host: string; port: number; token?: string } | undefined;
  if (values.config) {
    const config = readConfig(values.config);
    if (typeof config === 'number') return config;
    if (config.admin) target = { host: config.admin.host, port: config.admin.port, token: config.admin.token };
    else if (!values.admin) return usage(`${values.config} has no admin section: the running proxy has no admin API to talk to`);
  }
  if (values.admin) {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(values.admin);
    if (!m) return usage('--admin takes HOST:PORT');
    target = { host: m[1], port: Number(m[2]), token: target?.token };
  }
  if (!target) return usage(`${name} needs --config FILE (for admin.bind and the token) or --admin HOST:PORT`);
  target.token = process.env.PGWARDEN_ADMIN_TOKEN || target.token;
  return runAdminVerb(name, { backend, to: values.to }, target);
}

/** Load and validate; on a bad config print the problems and return exit code 2. */
function readConfig(path: string): Config | number {
  try {
    return loadConfigFile(path);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.format()}\n`);
      return 2;
    }
    throw e;
  }
}

function usage(message: string): number {
  process.stderr.write(`pgwarden: ${message}\n${USAGE}\n`);
  return 2;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Let pino flush; anything still holding the loop after that is a bug we do not wait for.
      setTimeout(() => process.exit(code), 500).unref();
    },
    (e) => {
      process.stderr.write(`pgwarden: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
