// `novacron start`: loads the configuration, boots the node's component graph and serves until
// SIGTERM/SIGINT, then stops every component in reverse order and exits 0. A bad config starts
// nothing; a failed critical component exits 1 with the component and the cause.
// Heavy modules are imported inside the action, so that other commands don't pay for them.
import type { Command } from 'commander';
import type { NovaCronNode } from '../boot/node.js';
import type { BootReport } from '../boot/orchestrator.js';
import { NovaCronError, ValidationError, ensureNovaCronError } from '../errors.js';
import { EXIT_USAGE } from './run.js';

interface StartFlags {
  config?: string;
  dataDir?: string;
  set: string[];
}

export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('Boot a NovaCron node and serve the API until SIGTERM or SIGINT')
    .option('-c, --config <file>', 'configuration file (default: $NOVACRON_CONFIG, else built-in defaults)')
    .option('-d, --data-dir <dir>', 'data directory (overrides system.data_dir)')
    .option(
      '--set <key=value>',
      'override any config key, e.g. --set api.rest_port=18080 (repeatable)',
      collect,
      [],
    )
    .action(async (flags: StartFlags) => {
      process.exitCode = await runStart(flags);
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Boots and serves; resolves with the process exit code once the node has stopped. */
export async function runStart(flags: StartFlags): Promise<number> {
  const [{ loadConfig }, { parseSetFlags }, { NovaCronNode }, { nodeComponents }, { createNodeLogger }] =
    await Promise.all([
      import('../config/loader.js'),
      import('../config/overrides.js'),
      import('../boot/node.js'),
      import('../components/index.js'),
      import('../observability/logger.js'),
    ]);
  const tty = process.stdout.isTTY === true;
  let loaded;
  let configLoadMs: number;
  try {
    let overrides: Record<string, unknown>;
    try {
      overrides = parseSetFlags(flags.set);
    } catch (err) {
      throw new ValidationError((err as Error).message, { hint: 'write --set section.key=value' });
    }
    if (flags.dataDir !== undefined) overrides['system.data_dir'] = flags.dataDir;
    const t0 = performance.now();
    loaded = await loadConfig({ file: flags.config, flags: overrides });
    configLoadMs = Math.round((performance.now() - t0) * 10) / 10;
  } catch (err) {
    const e = ensureNovaCronError(err);
    process.stderr.write(`error: ${e.describe()}\n`);
    return EXIT_USAGE;
  }
  const { config } = loaded;
  const nodeLogger = createNodeLogger(config.system);
  const logger = nodeLogger.logger;
  for (const w of loaded.warnings) logger.warn(w);

  let node: NovaCronNode;
  try {
    node = new NovaCronNode({
      config,
      logger,
      components: nodeComponents({ nodeLogger }),
      configLoad: { file: loaded.file ?? null, durationMs: configLoadMs },
    });
  } catch (err) {
    logger.fatal({ err: ensureNovaCronError(err).message }, 'invalid component graph');
    return EXIT_USAGE;
  }

  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn(`${signal} again: exiting without waiting for a clean stop`);
        process.exit(130);
      }
      stopping = true;
      logger.info({ signal }, `${signal} received: stopping components in reverse order`);
      node.stop().then(resolve, (err: unknown) => {
        logger.error({ err }, 'stop failed');
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });

  let report: BootReport;
  try {
    report = await node.start();
  } catch (err) {
    if (stopping) {
      await stopped;
      logger.info('stopped during boot');
      return 0;
    }
    const e = ensureNovaCronError(err);
    logger.fatal({ code: e.code, key: e.key }, e.describe());
    if (tty) process.stderr.write(renderBootSummary(node.bootReport(), node) + '\n');
    if (!tty || logger.level === 'silent') process.stderr.write(`error: ${e.describe()}\n`);
    return e instanceof NovaCronError && e.code.startsWith('config') ? EXIT_USAGE : 1;
  }

  const sinceProcessStart = Math.round(performance.now());
  const url = node.services.api?.url ?? '';
  logger.info(
    {
      bootMs: report.totalMs,
      sinceProcessStartMs: sinceProcessStart,
      state: report.state,
      mode: node.mode(),
      url,
    },
    `ready in ${sinceProcessStart} ms (boot ${Math.round(report.totalMs ?? 0)} ms, ${report.state})`,
  );
  if (tty) process.stdout.write(renderBootSummary(report, node) + `\n  open ${url}/\n\n`);
  await stopped;
  logger.info('stopped');
  return 0;
}

/** A compact, human-readable boot summary: phases, levels, per-component durations, total. */
export function renderBootSummary(
  report: BootReport,
  node: Pick<NovaCronNode, 'nodeId' | 'mode' | 'configLoad'>,
): string {
  const lines = [
    `NovaCron ${node.nodeId}: ${report.state} — boot ${fmt(report.totalMs)} (${report.parallel ? 'parallel' : 'sequential'}, ${report.levels.length} levels, mode ${node.mode()})`,
  ];
  if (node.configLoad) {
    lines.push(
      `  config  ${node.configLoad.file ?? 'built-in defaults'} loaded in ${fmt(node.configLoad.durationMs)}`,
    );
  }
  const width = Math.max(...report.components.map((c) => c.name.length));
  for (const c of report.components) {
    lines.push(
      `  ${c.phase.padEnd(8)}L${c.level}  ${c.name.padEnd(width)}  ${fmt(c.durationMs).padStart(9)}  ${c.status}${c.error ? `: ${c.error}` : ''}`,
    );
  }
  return lines.join('\n');
}

function fmt(ms: number | null): string {
  return ms === null ? '-' : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}
