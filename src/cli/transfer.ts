// `novacron transfer receive|send`: DWCP as a standalone tool. The receiver writes verified files
// into a directory; the sender shows a progress bar on a TTY and can print a JSON summary.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { loadConfig } from '../config/loader.js';
import { detectMode } from '../config/mode-detector.js';
import { parseSetFlags } from '../config/overrides.js';
import type { NetworkMode, NovaCronConfig } from '../config/schema.js';
import { ValidationError } from '../errors.js';
import { createReceiver } from '../dwcp/file-receiver.js';
import { sendFile, type SendProgress } from '../dwcp/file-sender.js';
import type { ConnectionSecurity } from '../dwcp/transport/connection.js';
import {
  DWCP_AUTH_SETTINGS,
  describeSecurity,
  dwcpSecurity,
  type DwcpAuthSetting,
} from '../dwcp/transport/auth-config.js';
import { action } from './run.js';

const collect = (v: string, prev: string[]) => [...prev, v];

/** Parses HOST:PORT (IPv6 in brackets). */
export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ValidationError(`${what} must be HOST:PORT, not "${s}"`, {
      hint: 'e.g. 10.0.0.2:7070 or [::1]:7070',
    });
  }
  return { host: m[1]!, port };
}

interface CommonOpts {
  config?: string;
  set: string[];
  encrypt: boolean;
  auth?: string;
  ca?: string;
  cert?: string;
  key?: string;
  peerName: string[];
}

async function settings(
  opts: CommonOpts,
  modeOpt?: string,
): Promise<{ config: NovaCronConfig; mode: NetworkMode; security: ConnectionSecurity }> {
  let flags: Record<string, string>;
  try {
    flags = parseSetFlags(opts.set);
  } catch (err) {
    throw new ValidationError((err as Error).message);
  }
  const { config } = await loadConfig({ file: opts.config, flags });
  let mode: NetworkMode;
  if (modeOpt !== undefined) {
    if (modeOpt !== 'datacenter' && modeOpt !== 'internet' && modeOpt !== 'hybrid') {
      throw new ValidationError(`--mode must be datacenter, internet or hybrid, not "${modeOpt}"`);
    }
    mode = modeOpt;
  } else {
    mode = (await detectMode(config)).mode;
  }
  if (opts.auth !== undefined && !DWCP_AUTH_SETTINGS.includes(opts.auth as DwcpAuthSetting)) {
    throw new ValidationError(`--auth must be ${DWCP_AUTH_SETTINGS.join(', ')}, not "${opts.auth}"`);
  }
  // Certificate flags alone mean certificate authentication (unless dwcp.auth already allows it).
  const certFlags = opts.ca !== undefined || opts.cert !== undefined || opts.key !== undefined;
  const auth =
    (opts.auth as DwcpAuthSetting | undefined) ??
    (certFlags && config.dwcp.auth === 'token' ? 'ca' : config.dwcp.auth);
  const flag = (path: string | undefined, label: string) =>
    path === undefined ? undefined : { path: resolve(path), label };
  const cert = flag(opts.cert, '--cert');
  const key = flag(opts.key, '--key');
  const ca = flag(opts.ca, '--ca');
  const security = await dwcpSecurity(config, {
    encrypt: opts.encrypt && config.dwcp.features.encryption,
    auth,
    files: { ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(ca ? { ca } : {}) },
    peerNames: opts.peerName,
  });
  return { config, mode, security };
}

/** The authentication options both subcommands take. */
function authOptions(cmd: Command, peerNameHelp: string): Command {
  return cmd
    .option(
      '--auth <method>',
      'token (cluster.join_token), ca (certificates signed by the cluster CA) or token_or_ca (default: dwcp.auth; ca when --ca/--cert/--key are given)',
    )
    .option('--ca <file>', 'cluster CA certificate(s), PEM (default: security.tls.ca_file)')
    .option(
      '--cert <file>',
      "this host's certificate (then intermediates), PEM (default: security.tls.cert_file)",
    )
    .option('--key <file>', 'private key of --cert, PEM (default: security.tls.key_file)')
    .option('--peer-name <name>', peerNameHelp, collect, []);
}

function human(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

export function registerTransferCommand(program: Command): void {
  const transfer = program
    .command('transfer')
    .description('Move files between hosts over DWCP (multi-stream, delta-encoded, encrypted)');

  const receive = transfer
    .command('receive')
    .description('Listen for DWCP transfers and write verified files into a directory')
    .requiredOption('--listen <host:port>', 'address to listen on, e.g. 0.0.0.0:7070')
    .requiredOption('--dir <dir>', 'directory to write received files into')
    .option('--once', 'exit after the first file is received')
    .option('--no-encrypt', 'accept unencrypted streams (still authenticated)')
    .option('-c, --config <file>', 'configuration file (cluster.join_token, dwcp.*, security.tls.*)')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, []);
  authOptions(
    receive,
    'accept only senders whose certificate names this (SAN DNS/IP or CN; repeatable; default: any node of the CA)',
  ).action(
    action(async (opts: CommonOpts & { listen: string; dir: string; once?: boolean }) => {
      const { host, port } = parseHostPort(opts.listen, '--listen');
      const s = await settings(opts, 'internet');
      const dir = resolve(opts.dir);
      let finish: () => void = () => {};
      const finished = new Promise<void>((r) => (finish = r));
      const rx = await createReceiver({
        dir,
        host,
        port,
        security: s.security,
        onFile: (f) => {
          process.stdout.write(`received ${f.name} (${human(f.bytes)}) -> ${f.path}\n`);
          if (opts.once) finish();
        },
        onError: (e) => process.stderr.write(`warning: ${e.describe()}\n`),
      });
      process.stdout.write(
        `listening on ${rx.address.host}:${rx.address.port}, writing into ${dir} (authentication: ${describeSecurity(s.security)})\n`,
      );
      const stop = () => finish();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await finished;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await rx.close();
    }),
  );

  const send = transfer
    .command('send')
    .description(
      'Send a file to a DWCP receiver; a second send of a changed file reuses what the receiver holds',
    )
    .argument('<file>', 'file to send')
    .requiredOption('--to <host:port>', 'receiver address')
    .option('--name <name>', 'file name at the receiver (default: the base name)')
    .option(
      '--streams <n|auto>',
      'parallel TCP streams, or auto to adapt to goodput (default: auto from the mode profile)',
      'auto',
    )
    .option(
      '--mode <mode>',
      'datacenter, internet or hybrid profile (default: system.mode, detected when auto)',
    )
    .option('--json', 'print a JSON summary instead of a progress bar')
    .option('--no-encrypt', 'do not encrypt (still authenticated)')
    .option('-c, --config <file>', 'configuration file (cluster.join_token, dwcp.*, security.tls.*)')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, []);
  authOptions(
    send,
    "the receiver's certificate must name this (its node or host name, or address; repeatable: any of them)",
  ).action(
    action(
      async (
        file: string,
        opts: CommonOpts & { to: string; name?: string; streams: string; mode?: string; json?: boolean },
      ) => {
        const { host, port } = parseHostPort(opts.to, '--to');
        const s = await settings(opts, opts.mode);
        const profile = s.config.dwcp.profiles[s.mode];
        const adaptive = opts.streams === 'auto';
        const streams = adaptive ? profile.streams : Number(opts.streams);
        if (!Number.isInteger(streams) || streams < 1 || streams > 256) {
          throw new ValidationError(
            `--streams must be a whole number from 1 to 256 or "auto", not "${opts.streams}"`,
          );
        }
        const showBar = !opts.json && process.stderr.isTTY === true;
        const bar = showBar
          ? new cliProgress.SingleBar(
              {
                format:
                  ' {bar} {percentage}% | {done}/{size} | {rate}/s | ETA {eta_formatted} | ratio {ratio} | {streams} streams',
                hideCursor: true,
                stream: process.stderr,
              },
              cliProgress.Presets.shades_classic,
            )
          : undefined;
        const started = performance.now();
        const onProgress = (p: SendProgress) => {
          if (!bar) return;
          const secs = (performance.now() - started) / 1000;
          bar.setTotal(p.total);
          bar.update(p.bytes, {
            done: human(p.bytes),
            size: human(p.total),
            rate: human(p.bytes / Math.max(secs, 1e-3)),
            ratio: p.wireBytes > 0 ? (p.bytes / p.wireBytes).toFixed(2) : '-',
            streams: p.streams,
          });
        };
        bar?.start(1, 0, { done: '0 B', size: '?', rate: '0 B', ratio: '-', streams: streams });
        let summary;
        try {
          summary = await sendFile(file, {
            host,
            port,
            security: s.security,
            streams,
            adaptive,
            minStreams: profile.min_streams,
            maxStreams: profile.max_streams,
            codec: { codec: profile.compression, level: profile.compression_level },
            congestionControl: profile.congestion_control,
            ...(opts.name !== undefined ? { name: opts.name } : {}),
            onProgress,
          });
        } finally {
          bar?.stop();
        }
        const out = {
          bytes: summary.bytes,
          wireBytes: summary.wireBytes,
          seconds: Number(summary.seconds.toFixed(3)),
          streams: summary.streams,
          chunks: summary.chunks,
        };
        if (opts.json) process.stdout.write(JSON.stringify(out) + '\n');
        else {
          const c = summary.chunks;
          process.stdout.write(
            `sent ${summary.name}: ${human(summary.bytes)} in ${summary.seconds.toFixed(2)} s ` +
              `(${human(summary.bytes / Math.max(summary.seconds, 1e-3))}/s), ${human(summary.wireBytes)} on the wire ` +
              `(ratio ${(summary.bytes / Math.max(1, summary.wireBytes)).toFixed(2)}), ${summary.streams} streams; ` +
              `chunks: ${c.zero} zero, ${c.known} known, ${c.delta} delta, ${c.literal} literal\n`,
          );
        }
      },
    ),
  );
}
