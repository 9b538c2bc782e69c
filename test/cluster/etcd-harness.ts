// Test harness: a private 1- or 3-member etcd cluster on free loopback ports in temp dirs, with kill/restart per member.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/ports.js';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  proc: ChildProcess | undefined;
}

/** Whether the etcd binary is installed. In CI a missing binary must fail the test, not skip it. */
export function etcdAvailable(): boolean {
  const ok = spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!ok && process.env.CI)
    throw new Error('etcd is not installed (Debian package etcd-server) and CI is set');
  return ok;
}

/**
 * A private etcd cluster. Every member has a unique name and cluster token, listens only on
 * 127.0.0.1 ports that were free, and keeps its data in its own temp dir; `stop()` kills what it
 * started and removes the dirs. It never connects to an etcd it did not start.
 */
export class EtcdCluster {
  private constructor(
    readonly members: EtcdMember[],
    private readonly root: string,
    private readonly initialCluster: string,
    private readonly token: string,
  ) {}

  static async start(size: 1 | 3): Promise<EtcdCluster> {
    const root = mkdtempSync(join(tmpdir(), 'novacron-etcd-'));
    const token = `novacron-test-${process.pid}-${Date.now()}`;
    const members: EtcdMember[] = [];
    for (let i = 0; i < size; i++) {
      const name = `m${i}-${process.pid}`;
      members.push({
        name,
        clientUrl: `http://127.0.0.1:${await freePort()}`,
        peerUrl: `http://127.0.0.1:${await freePort()}`,
        dataDir: join(root, name),
        proc: undefined,
      });
    }
    const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const c = new EtcdCluster(members, root, initialCluster, token);
    // if the test process exits without stop() (timeout, crash), still kill the members and remove the dirs
    process.once('exit', c.onExit);
    try {
      await Promise.all(members.map((m) => c.launch(m, 'new')));
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** SIGKILLs member `i` and waits for it to exit. */
  async kill(i: number): Promise<void> {
    const m = this.member(i);
    const p = m.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGKILL');
    await exited;
    m.proc = undefined;
  }

  /** Starts member `i` again on its data dir and waits until it serves clients. */
  async restart(i: number): Promise<void> {
    await this.launch(this.member(i), 'existing');
  }

  async stop(): Promise<void> {
    process.removeListener('exit', this.onExit);
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    rmSync(this.root, { recursive: true, force: true });
  }

  private readonly onExit = (): void => {
    for (const m of this.members) if (m.proc && m.proc.exitCode === null) m.proc.kill('SIGKILL');
    rmSync(this.root, { recursive: true, force: true });
  };

  private member(i: number): EtcdMember {
    const m = this.members[i];
    if (!m) throw new Error(`no etcd member ${i}`);
    return m;
  }

  private launch(m: EtcdMember, state: 'new' | 'existing'): Promise<void> {
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=${m.clientUrl}`,
      `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`,
      `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${this.initialCluster}`,
      `--initial-cluster-token=${this.token}`,
      `--initial-cluster-state=${state}`,
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--logger=zap',
      '--log-outputs=stderr',
      '--enable-v2=false',
    ];
    const proc = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    m.proc = proc;
    return new Promise<void>((resolve, reject) => {
      let log = '';
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`etcd ${m.name} did not become ready in 20 s:\n${log.slice(-2000)}`));
      }, 20_000);
      proc.stderr?.on('data', (d: Buffer) => {
        log += d.toString('utf8');
        if (/ready to serve client requests|serving client traffic/.test(log)) {
          clearTimeout(timer);
          proc.stderr?.removeAllListeners('data');
          proc.stderr?.resume();
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`etcd ${m.name} exited with ${String(code)}:\n${log.slice(-2000)}`));
      });
    });
  }
}
