// Test harness: a private 1- or 3-member etcd cluster on free loopback ports in temp dirs, with kill/restart per
// member; optionally serving clients over TLS (https, with or without client certificates), and a throwaway PKI.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates } from '../../src/security/tls.js';
import { freePort } from '../helpers/ports.js';

/** Client TLS of the etcd members: server certificate and key, and the CA client certificates must chain to. */
export interface EtcdServerTls {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  /**
   * `--client-cert-auth` and `--trusted-ca-file`: clients must present a certificate signed by
   * `caFile` (mutual TLS). False: server-verified TLS only (`caFile` is then only what clients trust).
   */
  readonly clientCertAuth: boolean;
}

export interface EtcdStartOptions {
  /** Serve clients on https:// with this material (peers stay on plain http, loopback only). */
  readonly tls?: EtcdServerTls;
  /** More etcd flags (e.g. `--auth-token-ttl=2`). */
  readonly extraArgs?: readonly string[];
}

/** PEM files of a throwaway PKI written into `dir`. */
export interface TestPki {
  /** CA that signed the server and client certificates. */
  readonly caFile: string;
  /** Server certificate for localhost / 127.0.0.1 / ::1 and its key. */
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** Client certificate (CN `clientCn`, extKeyUsage clientAuth) and its key. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** Another CA, unrelated to the one above (for "wrong CA" cases). */
  readonly otherCaFile: string;
}

/**
 * Makes a CA and a server certificate with the node's own generator (src/security/tls.ts), plus a
 * client certificate signed by that CA and an unrelated second CA (node-forge), all as PEM files.
 */
export async function makeTestPki(dir: string, clientCn = 'novacron-node'): Promise<TestPki> {
  const names = { dns: ['localhost'], ips: ['127.0.0.1', '::1'] };
  const now = new Date();
  const main = await generateCertificates(names, now, null);
  const other = await generateCertificates(names, now, null);
  const { default: forge } = await import('node-forge');
  const pki = forge.pki;
  const pair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  const caCert = pki.certificateFromPem(main.caCert);
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(pair.publicKey);
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime() + 86400_000);
  cert.setSubject([{ name: 'commonName', value: clientCn }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  cert.sign(pki.privateKeyFromPem(main.caKey), forge.md.sha256.create());
  const files: TestPki = {
    caFile: join(dir, 'ca.crt'),
    serverCertFile: join(dir, 'server.crt'),
    serverKeyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    otherCaFile: join(dir, 'other-ca.crt'),
  };
  writeFileSync(files.caFile, main.caCert);
  writeFileSync(files.serverCertFile, main.cert);
  writeFileSync(files.serverKeyFile, main.key, { mode: 0o600 });
  writeFileSync(files.clientCertFile, pki.certificateToPem(cert));
  writeFileSync(files.clientKeyFile, pair.privateKey, { mode: 0o600 });
  writeFileSync(files.otherCaFile, other.caCert);
  return files;
}

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
    private readonly tls: EtcdServerTls | undefined,
    private readonly extraArgs: readonly string[] = [],
  ) {}

  static async start(size: 1 | 3, options: EtcdStartOptions = {}): Promise<EtcdCluster> {
    // Another process may bind a chosen port before etcd does: try again on fresh ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await EtcdCluster.startOnce(size, options);
      } catch (e) {
        if (attempt >= 3 || !/address already in use/.test(String(e))) throw e;
      }
    }
  }

  private static async startOnce(size: 1 | 3, options: EtcdStartOptions): Promise<EtcdCluster> {
    const scheme = options.tls ? 'https' : 'http';
    const root = mkdtempSync(join(tmpdir(), 'novacron-etcd-'));
    const token = `novacron-test-${process.pid}-${Date.now()}`;
    const members: EtcdMember[] = [];
    for (let i = 0; i < size; i++) {
      const name = `m${i}-${process.pid}`;
      members.push({
        name,
        clientUrl: `${scheme}://127.0.0.1:${await freePort()}`,
        peerUrl: `http://127.0.0.1:${await freePort()}`,
        dataDir: join(root, name),
        proc: undefined,
      });
    }
    const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const c = new EtcdCluster(members, root, initialCluster, token, options.tls, options.extraArgs);
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
      ...(this.tls
        ? [
            `--cert-file=${this.tls.certFile}`,
            `--key-file=${this.tls.keyFile}`,
            // etcd requires client certificates whenever --trusted-ca-file is given
            ...(this.tls.clientCertAuth
              ? [`--trusted-ca-file=${this.tls.caFile}`, '--client-cert-auth']
              : []),
          ]
        : []),
      ...this.extraArgs,
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
