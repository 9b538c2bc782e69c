// The `novacron` command: one file per command group in this folder, each exporting a
// `register…Command(program)` function. Only the group named on the command line is imported
// (every group for help or an unknown word), so `novacron start` never pays for the ML service,
// the DWCP codecs or the trace simulator.
import { Command } from 'commander';
import { readFileSync } from 'node:fs';

type Register = (program: Command) => void;

/** Command groups (keep one line each, alphabetical). */
const GROUPS: Record<string, () => Promise<Register>> = {
  cluster: async () => (await import('./cluster.js')).registerClusterCommand,
  config: async () => (await import('./config.js')).registerConfigCommand,
  ml: async () => (await import('./ml.js')).registerMlCommand,
  node: async () => (await import('./node.js')).registerNodeCommand,
  scheduler: async () => (await import('./scheduler.js')).registerSchedulerCommand,
  start: async () => (await import('./start.js')).registerStartCommand,
  token: async () => (await import('./token.js')).registerTokenCommand,
  transfer: async () => (await import('./transfer.js')).registerTransferCommand,
  vm: async () => (await import('./vm.js')).registerVmCommand,
};

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Builds the program with the groups `argv` needs (all of them when it names none). */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<Command> {
  const program = new Command('novacron')
    .description('NovaCron: distributed VM control plane')
    .version(pkg.version)
    .showHelpAfterError();
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  const names = first !== undefined && first in GROUPS ? [first] : Object.keys(GROUPS);
  const registers = await Promise.all(names.map((n) => GROUPS[n]!()));
  for (const register of registers) register(program);
  return program;
}

await (await buildProgram()).parseAsync(process.argv);
