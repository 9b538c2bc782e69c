// Structured logging: JSON lines (pino) by default, human-readable when stdout is a TTY.
// Secrets never reach the log: known secret fields are redacted by path.
import pino, { type Logger, type DestinationStream, type StreamEntry } from 'pino';
import { createRequire } from 'node:module';
import type PinoPretty from 'pino-pretty';
import type { NovaCronConfig } from '../config/schema.js';

export type { Logger } from 'pino';

/** Field paths pino censors wherever they appear in a log object. */
export const REDACTED_LOG_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'jwt_secret',
  '*.jwt_secret',
  'join_token',
  '*.join_token',
  'vault_token',
  '*.vault_token',
  'secret',
  '*.secret',
];

export interface NodeLogger {
  readonly logger: Logger;
  /** Adds a destination (e.g. the log file in the data dir) at run time. */
  addStream(stream: DestinationStream): void;
}

/** Creates the node's logger. `format: auto` means pretty on a TTY, JSON otherwise. */
/** pino-pretty is loaded only for a terminal: JSON output (services, CI) never pays for it. */
function loadPretty(): typeof PinoPretty {
  return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
}

export function createNodeLogger(
  system: Pick<NovaCronConfig['system'], 'log_level' | 'log_format' | 'node_id'>,
  out: NodeJS.WriteStream = process.stdout,
): NodeLogger {
  const usePretty = system.log_format === 'pretty' || (system.log_format === 'auto' && out.isTTY === true);
  const primary: DestinationStream = usePretty
    ? loadPretty()({
        destination: out,
        colorize: out.isTTY === true,
        translateTime: 'HH:MM:ss.l',
        ignore: 'pid,hostname,node',
        sync: true,
      })
    : out === process.stdout || out === process.stderr
      ? pino.destination({ dest: out === process.stdout ? 1 : 2, sync: true })
      : out;
  const streams: StreamEntry[] = [{ stream: primary, level: system.log_level }];
  const multi = pino.multistream(streams);
  const logger = pino(
    {
      level: system.log_level,
      base: { node: system.node_id },
      redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    multi,
  );
  return { logger, addStream: (stream) => multi.add({ stream, level: system.log_level }) };
}
