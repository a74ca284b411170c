#!/usr/bin/env node
// pgwarden command line: run the proxy, check a config, or start the demo cluster.
// Exit codes: 0 clean stop, 2 bad usage or config, 1 runtime failure.
import { parseArgs } from 'node:util';
import { loadConfigFile } from './config/load';
import { ConfigError } from './config/errors';
import { describeConfig } from './config/describe';
import { createLogger } from './logger';
import { App } from './app';
import { runDemo } from './demo';

const USAGE = `usage:
  pgwarden --config FILE            run the proxy
  pgwarden check --config FILE      validate a config and print what it would use
  pgwarden demo [--rw-port 6432] [--ro-port 6433]
                                    a throwaway primary + two replicas behind pgwarden
  pgwarden --help | --version`;

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
      },
    });
  } catch (e) {
    process.stderr.write(`pgwarden: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
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
  if (positionals.length > 1 || !['run', 'check', 'demo'].includes(command)) {
    process.stderr.write(`pgwarden: unknown command ${positionals.join(' ')}\n${USAGE}\n`);
    return 2;
  }
  if (command === 'demo') {
    const port = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
    const rw = port(values['rw-port'], 6432);
    const ro = port(values['ro-port'], 6433);
    if (![rw, ro].every((p) => Number.isInteger(p) && p > 0 && p < 65536)) {
      process.stderr.write('pgwarden: --rw-port and --ro-port take a port number (1-65535)\n');
      return 2;
    }
    return runDemo({ rwPort: rw, roPort: ro });
  }
  if (!values.config) {
    process.stderr.write(`pgwarden: --config FILE is required\n${USAGE}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfigFile(values.config);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.format()}\n`);
      return 2;
    }
    throw e;
  }
  if (command === 'check') {
    process.stdout.write(`${describeConfig(config)}\n`);
    return 0;
  }
  const log = createLogger(config.logging.level);
  const app = new App(config, log);
  try {
    await app.start();
  } catch (e) {
    log.fatal({ event: 'startup.failed', err: (e as Error).message }, (e as Error).message);
    log.flush();
    process.stderr.write(`pgwarden: ${(e as Error).message}\n`);
    return 1;
  }
  return new Promise((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) {
        log.warn({ event: 'shutdown.forced', signal: sig }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      log.info({ event: 'shutdown.begin', signal: sig }, `${sig}: stopping (shutdown_timeout ${config.proxy.shutdownTimeout} ms)`);
      app.stop().then(() => {
        log.info({ event: 'shutdown.done' }, 'stopped');
        resolve(0);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
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
