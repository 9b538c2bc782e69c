// TLS and authentication to etcd: reading the PEM files the rules (etcd-rules.ts, pure) call for
// (I/O), and turning a failed connection into a short cause per endpoint (a pure classifier plus a
// probe of each endpoint alone).
import { readFile } from 'node:fs/promises';
import { ErrorCode, NovaCronError } from '../errors.js';
import { connectEtcd, withTimeout } from './etcd-client.js';
import type { EtcdConnectOptions } from './etcd-client.js';
import { configError, planEtcdSecurity, type EtcdConfig } from './etcd-rules.js';

export { endpointScheme, etcdSecurityProblems, planEtcdSecurity } from './etcd-rules.js';
export type { EtcdConfig, EtcdRuleProblem, EtcdSecurityPlan } from './etcd-rules.js';

async function readPem(path: string, key: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new NovaCronError(ErrorCode.ConfigInvalid, `cannot read ${key} ${path}: ${code}`, {
      key,
      cause: err,
    });
  }
  if (!data.toString('latin1').includes('-----BEGIN ')) {
    throw configError(key, `${key} ${path} is not PEM (no -----BEGIN line)`);
  }
  return data;
}

/** The TLS material and credentials for `connectEtcd`, files read; errors name the key and the path. */
export async function loadEtcdSecurity(cfg: EtcdConfig): Promise<Pick<EtcdConnectOptions, 'tls' | 'auth'>> {
  const plan = planEtcdSecurity(cfg);
  let tls: EtcdConnectOptions['tls'];
  if (plan.tls) {
    const ca = await readPem(plan.tls.caFile, 'cluster.etcd.tls.ca_file');
    if (plan.tls.certFile && plan.tls.keyFile) {
      const cert = await readPem(plan.tls.certFile, 'cluster.etcd.tls.cert_file');
      const key = await readPem(plan.tls.keyFile, 'cluster.etcd.tls.key_file');
      tls = { ca, cert, key };
    } else {
      tls = { ca };
    }
  }
  return { ...(tls ? { tls } : {}), ...(plan.auth ? { auth: plan.auth } : {}) };
}

/** The useful part of a gRPC / OpenSSL error text ("14 UNAVAILABLE: No connection established. Last error: …"). */
function detailOf(message: string): string {
  let m = message;
  const last = /Last error: ([\s\S]*?)(?: \(\d{4}-\d\d-\d\dT[^)]*\))?\.? ?(?:Resolution note:.*)?$/.exec(m);
  if (last?.[1]) m = last[1];
  m = m.replace(/^Error: /, '').replace(/^\d+ [A-Z_]+: /, '');
  // OpenSSL: "800C…:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/…:SSL alert number 42"
  const ssl = /error:[0-9A-F]+:SSL routines:[^:]*:([^:]+)/.exec(m);
  if (ssl?.[1]) m = ssl[1];
  return m.trim().replace(/\.$/, '');
}

/**
 * A short cause for an etcd call that failed, naming the key to fix when there is one (pure).
 * Never includes the password (etcd's messages do not carry it).
 */
export function etcdFailureCause(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const d = detailOf(message);
  const t = message;
  if (/authentication failed|invalid user ID or password/i.test(t))
    return 'authentication failed: wrong cluster.etcd.username or cluster.etcd.password';
  if (/user name is empty/i.test(t))
    return 'etcd requires authentication: set cluster.etcd.username and cluster.etcd.password';
  if (/authentication is not enabled/i.test(t))
    return 'cluster.etcd.username is set but authentication is not enabled in etcd';
  if (/permission denied/i.test(t))
    return `permission denied: the etcd user (cluster.etcd.username, or the client certificate's CN when no username is set) lacks read/write on the region prefix (${d})`;
  if (
    /alert (bad certificate|certificate required|unknown ca|certificate unknown)|alert number (42|46|48|116)\b/i.test(
      t,
    )
  )
    return `TLS handshake failed: etcd rejected the client certificate (${d}); set cluster.etcd.tls.cert_file and key_file to a certificate signed by the CA etcd trusts`;
  if (/Hostname\/IP does not match|altnames/i.test(t))
    return `TLS handshake failed: the server certificate does not name this host (${d})`;
  if (/certificate has expired|not yet valid/i.test(t))
    return `TLS handshake failed: server certificate ${d}`;
  if (
    /certificate signature failure|unable to verify|self[- ]signed certificate|unable to get (local )?issuer|unknown authority/i.test(
      t,
    )
  )
    return `certificate signed by unknown authority: cluster.etcd.tls.ca_file does not verify etcd's server certificate (${d})`;
  if (/before secure TLS connection|wrong version number|packet length too long|http request/i.test(t))
    return `TLS handshake failed: the endpoint does not speak TLS (${d}); if etcd serves plain HTTP, use http://`;
  return d;
}

/**
 * Tries each endpoint alone (one read under the prefix, with the same TLS and credentials) and
 * returns `endpoint: cause` for each one that fails, joined by `; `. When every endpoint answers
 * (the failure was transient), returns `fallback`'s cause for all of them.
 */
export async function diagnoseEtcd(opts: EtcdConnectOptions, fallback: unknown): Promise<string> {
  const budget = (opts.callTimeoutMs ?? 2000) * 2 + 500;
  const results = await Promise.all(
    opts.endpoints.map(async (endpoint) => {
      const conn = connectEtcd({ ...opts, endpoints: [endpoint] });
      try {
        await withTimeout(conn.kv.get('members/').string(), budget, endpoint);
        return null;
      } catch (err) {
        return `${endpoint}: ${etcdFailureCause(err)}`;
      } finally {
        conn.close();
      }
    }),
  );
  const failed = results.filter((r): r is string => r !== null);
  if (failed.length) return failed.join('; ');
  return `${opts.endpoints.join(', ')}: ${etcdFailureCause(fallback)}`;
}
