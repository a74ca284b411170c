// pino logs: JSON lines by default (for machines), `logging.format: pretty` (pino-pretty) for
// people at a terminal. Secrets never reach a line: password/token fields are redacted wherever
// they are.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, format: 'json' | 'pretty' | pino.DestinationStream = 'json', destination?: pino.DestinationStream): Logger {
  if (typeof format === 'object') {
    destination = format;
    format = 'json';
  }
  const options: pino.LoggerOptions = {
    level,
    base: { component: 'pgwarden' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['password', '*.password', '*.*.password', 'token', '*.token', 'config.health.password', 'config.coordination.etcd.password', 'connectionString', '*.connectionString', 'loginSecret', '*.loginSecret', '*.*.loginSecret'],
      censor: '[redacted]',
    },
    formatters: { level: (label) => ({ level: label }) },
  };
  if (destination) return pino(options, destination);
  if (format === 'pretty') {
    // Synchronous pretty printing in-process: a person is reading, throughput does not matter,
    // and no worker thread is left behind at exit.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pretty = require('pino-pretty') as (o: object) => pino.DestinationStream;
    return pino(options, pretty({ colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,component', sync: true }));
  }
  return pino(options, pino.destination({ fd: 1, sync: false }));
}
