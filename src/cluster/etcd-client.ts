// Connection to a region's etcd: one etcd3 client with deadlines on every unary call and a short circuit breaker per endpoint.
import { ConsecutiveBreaker, ConstantBackoff, circuitBreaker, handleWhen, retry } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';
import type { Namespace } from 'etcd3';
import { normalisePrefix } from './keys.js';

export interface EtcdConnectOptions {
  /** etcd client URLs (`http://host:port`; `https://` needs `tls`). */
  readonly endpoints: readonly string[];
  /** Region prefix (cluster.etcd.prefix). */
  readonly prefix: string;
  /** Deadline of each unary call in ms (default 2000). Streams (watch, keepalive) get their own. */
  readonly callTimeoutMs?: number;
  /** PEM material for TLS endpoints: the CA that signed etcd's certificates, and a client certificate for mutual TLS. */
  readonly tls?: { readonly ca: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** etcd password authentication (etcd's own users); the token is fetched and renewed by the client. */
  readonly auth?: { readonly username: string; readonly password: string };
}

/** An etcd connection scoped to one region prefix. `kv` reads and writes keys relative to the prefix. */
export interface EtcdConnection {
  readonly client: Etcd3;
  readonly kv: Namespace;
  /** The normalised region prefix (ends with `/`). */
  readonly prefix: string;
  readonly callTimeoutMs: number;
  /** Longest a call may take with its retries over the endpoints (callTimeoutMs per endpoint). */
  readonly retryBudgetMs: number;
  close(): void;
}

/**
 * Opens a client (lazily: no I/O until the first call). Unary calls carry a deadline so a
 * partition surfaces as an error instead of a hang; a dead endpoint is skipped after 3
 * consecutive failures and probed again after 500 ms (etcd3's default waits 5 s).
 */
export function connectEtcd(opts: EtcdConnectOptions): EtcdConnection {
  const callTimeoutMs = opts.callTimeoutMs ?? 2000;
  const client = new Etcd3({
    hosts: [...opts.endpoints],
    dialTimeout: callTimeoutMs,
    ...(opts.tls
      ? {
          credentials: {
            rootCertificate: opts.tls.ca,
            ...(opts.tls.key ? { privateKey: opts.tls.key } : {}),
            ...(opts.tls.cert ? { certChain: opts.tls.cert } : {}),
          },
        }
      : {}),
    ...(opts.auth ? { auth: { username: opts.auth.username, password: opts.auth.password } } : {}),
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: 500,
          breaker: new ConsecutiveBreaker(3),
        }),
      // endpoints are picked at random: enough attempts that a dead one is tripped and another tried
      global: retry(handleWhen(isRecoverableError), {
        maxAttempts: 2 * opts.endpoints.length + 1,
        backoff: new ConstantBackoff(50),
      }),
    },
  });
  const prefix = normalisePrefix(opts.prefix);
  const kv = client.namespace(prefix);
  const retryBudgetMs = callTimeoutMs * Math.max(1, opts.endpoints.length) + 100;
  return { client, kv, prefix, callTimeoutMs, retryBudgetMs, close: () => client.close() };
}

/** A promise that rejects after `ms` (and never keeps the process alive). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer from etcd within ${ms} ms`)), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** A key as text relative to the region prefix, whether or not the client already removed the prefix. */
export function relativeKey(conn: EtcdConnection, key: Buffer | string): string {
  const k = typeof key === 'string' ? key : key.toString('utf8');
  return k.startsWith(conn.prefix) ? k.slice(conn.prefix.length) : k;
}
