// The real `novacron` CLI (from source, through tsx) for the DWCP transfer tests: `cli` starts one
// (a receiver that keeps running), `run` runs one to its end and returns what it printed.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface TransferCli {
  cli(args: string[]): ChildProcess;
  run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

export function transferCli(env: NodeJS.ProcessEnv): TransferCli {
  const cli = (args: string[]): ChildProcess =>
    spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const run = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    const p = cli(args);
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number>((r) => p.on('close', (c) => r(c ?? 1)));
    return { code, stdout, stderr };
  };
  return { cli, run };
}
