// `novacron scheduler …`: replay placement traces through the scheduler's strategies
// (`simulate`) and list the strategies and their weights (`strategies`).
import type { Command } from 'commander';
import { ValidationError } from '../errors.js';
import { DEFAULT_STRATEGY, STRATEGIES } from '../scheduler/registry.js';
import { runSimulation } from '../scheduler/simulate/run.js';
import { action, output, renderTable } from './run.js';

function num(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new ValidationError(`${flag} expects a number, got ${v}`);
    return n;
  };
}

interface SimulateFlags {
  trace: string;
  flavors?: string;
  durations?: string;
  nodes?: string;
  hostCpus?: number;
  hostMemoryGib?: number;
  hosts?: number;
  strategy: string;
  seed?: number;
  all?: boolean;
  ignoreDepartures?: boolean;
  json?: boolean;
}

export function registerSchedulerCommand(program: Command): void {
  const cmd = program
    .command('scheduler')
    .description('Placement scheduler (ITP): strategies and trace simulation');

  cmd
    .command('simulate')
    .description(
      'Replay a placement trace (Azure V1 flavor trace or Alibaba openb pod list) with a strategy and the baselines',
    )
    .requiredOption('--trace <file>', 'v1.<split>.txt (Azure) or openb_pod_list_*.csv (Alibaba)')
    .option('--flavors <file>', 'Azure flavor map (default: flav_map.txt beside the trace)')
    .option('--durations <file>', 'Azure duration file (default: v1.<split>.c<T>.txt beside the trace)')
    .option('--host-cpus <n>', 'vCPUs per host (default 48 for Azure)', num('--host-cpus'))
    .option(
      '--host-memory-gib <m>',
      'memory per host in GiB (default 384 for Azure)',
      num('--host-memory-gib'),
    )
    .option(
      '--nodes <file>',
      'host list (openb_node_list_*.csv; default for Alibaba: the all-node list beside the trace)',
    )
    .option(
      '--hosts <n>',
      'fixed number of hosts (reports the rejection rate); default: as many as needed',
      num('--hosts'),
    )
    .option(
      '--strategy <name>',
      `strategy under test (${[...STRATEGIES.keys()].join(', ')})`,
      DEFAULT_STRATEGY,
    )
    .option('--seed <n>', 'tie-break seed', num('--seed'))
    .option('--all', 'run every strategy, not only the chosen one and the baselines')
    .option('--ignore-departures', 'keep every VM until the end (static packing)')
    .option('--json', 'print JSON')
    .action(
      action((flags: SimulateFlags) => {
        if (!STRATEGIES.has(flags.strategy))
          throw new ValidationError(`unknown strategy: ${flags.strategy}`, {
            hint: `one of ${[...STRATEGIES.keys()].join(', ')}`,
          });
        const report = runSimulation({
          trace: flags.trace,
          strategy: flags.strategy,
          ...(flags.flavors !== undefined ? { flavors: flags.flavors } : {}),
          ...(flags.durations !== undefined ? { durations: flags.durations } : {}),
          ...(flags.nodes !== undefined ? { nodes: flags.nodes } : {}),
          ...(flags.hostCpus !== undefined ? { hostCpus: flags.hostCpus } : {}),
          ...(flags.hostMemoryGib !== undefined ? { hostMemoryGib: flags.hostMemoryGib } : {}),
          ...(flags.hosts !== undefined ? { hosts: flags.hosts } : {}),
          ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          ...(flags.all ? { also: [...STRATEGIES.keys()] } : {}),
          ...(flags.ignoreDepartures ? { ignoreDepartures: true } : {}),
        });
        const json = {
          strategies: report.strategies.map((s) => ({
            name: s.strategy,
            placed: s.placed,
            rejected: s.rejected,
            meanHostsOverLowerBound: s.meanHostsOverLowerBound,
            peakHosts: s.peakHosts,
            rejectionRate: s.rejectionRate,
            meanHosts: s.meanHosts,
            meanLowerBound: s.meanLowerBound,
            seconds: s.seconds,
          })),
          default: report.default,
        };
        output(json, flags.json === true, () => {
          const rows = report.strategies.map((s) => ({
            strategy: s.strategy + (s.strategy === report.default ? ' *' : ''),
            placed: s.placed,
            rejected: s.rejected,
            'reject %': (100 * s.rejectionRate).toFixed(2),
            'mean hosts': s.meanHosts.toFixed(1),
            'mean lb': s.meanLowerBound.toFixed(1),
            'hosts/lb': s.meanHostsOverLowerBound.toFixed(4),
            peak: s.peakHosts,
            s: s.seconds.toFixed(1),
          }));
          const chosen = report.strategies.find((s) => s.strategy === report.default)!;
          const step = Math.max(1, Math.floor(chosen.hostsOverTime.length / 10));
          const overTime = chosen.hostsOverTime
            .filter((_, i) => i % step === 0)
            .map((p) => `${p.hosts}/${p.lowerBound}`)
            .join(' ');
          return (
            `trace ${report.trace} (${report.format}, ${report.vms} VMs) on ${report.pool}\n` +
            `files: ${Object.values(report.files).join(', ')}\n\n` +
            renderTable(rows, Object.keys(rows[0]!)) +
            `\nhosts in use / lower bound over time (${report.default}): ${overTime}\n`
          );
        });
      }),
    );

  cmd
    .command('strategies')
    .description('List placement strategies and their scorer weights')
    .option('--json', 'print JSON')
    .action(
      action((flags: { json?: boolean }) => {
        const list = [...STRATEGIES.values()];
        output(list, flags.json === true, () =>
          renderTable(
            list.map((s) => ({
              name: s.name + (s.name === DEFAULT_STRATEGY ? ' (default)' : ''),
              weights:
                Object.entries(s.weights)
                  .map(([k, w]) => `${k}=${w}`)
                  .join(' ') || '-',
              ties: s.tieBreak,
              description: s.description,
            })),
            ['name', 'weights', 'ties', 'description'],
          ),
        );
      }),
    );
}
