// novacron.v1.MigrationService (proto/novacron/v1/migration.proto): the destination side of a
// node-to-node migration, served on the gRPC port and authenticated by the cluster's join token
// (not by API tokens), plus the client the source node uses to call a peer.
import { timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ErrorCode, NovaCronError, UnavailableError } from '../../errors.js';
import type {
  AbortOutcome,
  ColdDisk,
  DestinationHost,
  PeerMigrationView,
  PrepareRequest,
  PrepareResult,
} from '../../migration/protocol.js';
import { PROTO_LOADER_OPTIONS, PROTO_ROOT, toGrpcError, type GrpcServiceRegistration } from './server.js';

export const MIGRATION_PROTO = join(PROTO_ROOT, 'novacron/v1/migration.proto');
export const MIGRATION_SERVICE = 'novacron.v1.MigrationService';

interface PrepareMsg {
  migration_id: string;
  vm_id: string;
  vm_name: string;
  spec_json: string;
  labels: Record<string, string>;
  restart_policy: string;
  source_node: string;
  kind: string;
  max_downtime_ms: number;
}
interface RefMsg {
  migration_id: string;
}

function loadMigrationPackage(): {
  pkg: ReturnType<typeof loadSync>;
  ctor: grpc.ServiceClientConstructor;
} {
  const pkg = loadSync(MIGRATION_PROTO, PROTO_LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(pkg) as unknown as {
    novacron: { v1: { MigrationService: grpc.ServiceClientConstructor } };
  };
  return { pkg, ctor: loaded.novacron.v1.MigrationService };
}

/** Checks `authorization: Bearer <join token>` in constant time. Pure apart from the metadata read. */
export function joinTokenAuthorizer(joinToken: string): (metadata: grpc.Metadata) => Promise<void> {
  const want = Buffer.from(joinToken);
  return (metadata) => {
    const header = String(metadata.get('authorization')[0] ?? '');
    const m = /^Bearer\s+(.+)$/i.exec(header);
    const got = Buffer.from(m?.[1] ?? '');
    if (joinToken === '')
      return Promise.reject(
        new NovaCronError(
          ErrorCode.Unauthenticated,
          'this node has no cluster.join_token: peers cannot call it',
          {
            key: 'cluster.join_token',
            hint: 'set the same cluster.join_token on every node',
          },
        ),
      );
    if (got.length !== want.length || !timingSafeEqual(got, want))
      return Promise.reject(
        new NovaCronError(
          ErrorCode.Unauthenticated,
          m
            ? 'peer authentication failed: the join token does not match cluster.join_token'
            : 'peer authentication failed: no join token (authorization: Bearer <cluster.join_token>)',
          { key: 'cluster.join_token', hint: 'every node must have the same cluster.join_token' },
        ),
      );
    return Promise.resolve();
  };
}

type Unary<Req> = (call: grpc.ServerUnaryCall<Req, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

function unary<Req>(
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, unknown>) => Promise<unknown>,
): Unary<Req> {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toGrpcError(err)),
    );
  };
}

/** The MigrationService registration, served by `host` (the node's migration manager). */
export function migrationServiceRegistration(
  host: () => DestinationHost,
  joinToken: string,
): GrpcServiceRegistration {
  const { pkg, ctor } = loadMigrationPackage();
  const implementation: grpc.UntypedServiceImplementation = {
    Prepare: unary<PrepareMsg>(async (m) => {
      const r = await host().prepare({
        migrationId: m.migration_id,
        vmId: m.vm_id,
        vmName: m.vm_name,
        specJson: m.spec_json,
        labels: m.labels,
        restartPolicy: m.restart_policy === 'always' ? 'always' : 'never',
        sourceNode: m.source_node,
        kind: m.kind === 'cold' ? 'cold' : 'live',
        maxDowntimeMs: m.max_downtime_ms,
      });
      return { node_id: r.nodeId, dwcp_port: r.dwcpPort };
    }),
    AwaitLoaded: unary<RefMsg>(async (m, call) => {
      // The caller going away (its process died, the link broke) before resume aborts the migration.
      const ac = new AbortController();
      call.on('cancelled', () => ac.abort());
      await host().awaitLoaded(m.migration_id, ac.signal);
      return {};
    }),
    Resume: unary<RefMsg>(async (m) => ({ resumed_at_us: await host().resume(m.migration_id) })),
    Abort: unary<RefMsg>(async (m) => {
      const r = await host().abort(m.migration_id, 'aborted by the source node');
      return { outcome: r.outcome, resumed_at_us: r.resumedAtUs ?? 0 };
    }),
    CommitCold: unary<{
      migration_id: string;
      disks: { name: string; format: string; read_only: boolean }[];
    }>(async (m) => {
      await host().commitCold(
        m.migration_id,
        m.disks.map((d) => ({
          name: d.name,
          format: d.format === 'raw' ? 'raw' : 'qcow2',
          readOnly: d.read_only,
        })),
      );
      return { resumed_at_us: 0 };
    }),
    Get: unary<RefMsg>(async (m) => {
      const v = await host().get(m.migration_id);
      return {
        migration_id: v.migrationId,
        vm_id: v.vmId,
        state: v.state,
        phase: v.phase,
        error: v.error ?? '',
      };
    }),
  };
  return {
    definition: ctor.service,
    implementation,
    packageDefinition: pkg,
    authorize: joinTokenAuthorizer(joinToken),
  };
}

// ------------------------------------------------------------------------------------------- client

const ERROR_CODES = new Set<string>(Object.values(ErrorCode));
function isErrorCode(s: string): s is ErrorCode {
  return ERROR_CODES.has(s);
}

/** A peer as configured in `cluster.peers`: `url` is its gRPC endpoint (http: plaintext, https: TLS). */
export interface PeerAddress {
  readonly name: string;
  readonly url: string;
}

/** `host:port` and TLS flag of a peer URL; a ValidationError naming the peer when it is not a URL. */
export function parsePeerUrl(peer: PeerAddress): { host: string; port: number; tls: boolean } {
  let u: URL;
  try {
    u = new URL(peer.url);
  } catch {
    throw new NovaCronError(
      ErrorCode.Validation,
      `cluster.peers: peer ${peer.name} has an invalid url ${peer.url}`,
      {
        key: 'cluster.peers',
        hint: 'use http://HOST:GRPC_PORT (or https:// when the peer serves TLS)',
      },
    );
  }
  const tls = u.protocol === 'https:' || u.protocol === 'grpcs:';
  const port = u.port === '' ? (tls ? 443 : 80) : Number(u.port);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port, tls };
}

interface WireCall {
  cancel(): void;
}
type WireMethod = (
  req: unknown,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => WireCall;

/** Client of a peer's MigrationService; errors come back as NovaCronErrors with the peer's code. */
export class MigrationPeerClient {
  readonly #client: grpc.Client;
  readonly #meta: grpc.Metadata;
  readonly peer: PeerAddress;
  readonly host: string;

  constructor(peer: PeerAddress, joinToken: string) {
    const { ctor } = loadMigrationPackage();
    const { host, port, tls } = parsePeerUrl(peer);
    this.peer = peer;
    this.host = host;
    const creds = tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
    this.#client = new ctor(`${host.includes(':') ? `[${host}]` : host}:${port}`, creds);
    this.#meta = new grpc.Metadata();
    this.#meta.set('authorization', `Bearer ${joinToken}`);
  }

  #call<T>(method: string, req: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const fn = (this.#client as unknown as Record<string, WireMethod>)[method]!.bind(this.#client);
    return new Promise<T>((resolve, reject) => {
      const call = fn(req, this.#meta, { deadline: Date.now() + timeoutMs }, (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(this.#toError(method, err));
        else resolve(res as T);
      });
      const onAbort = (): void => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #toError(method: string, err: grpc.ServiceError): NovaCronError {
    const code = String(err.metadata?.get('novacron-error-code')[0] ?? '');
    const where = `peer ${this.peer.name} (${this.peer.url}) ${method}`;
    if (isErrorCode(code)) return new NovaCronError(code, `${where}: ${err.details}`, { cause: err });
    if (err.code === grpc.status.UNAUTHENTICATED)
      return new NovaCronError(ErrorCode.Unauthenticated, `${where}: ${err.details}`, { cause: err });
    return new UnavailableError(`${where}: ${err.details || err.message}`, {
      cause: err,
      details: { transport: true, grpcCode: err.code },
    });
  }

  async prepare(req: PrepareRequest): Promise<PrepareResult> {
    const r = await this.#call<{ node_id: string; dwcp_port: number }>(
      'Prepare',
      {
        migration_id: req.migrationId,
        vm_id: req.vmId,
        vm_name: req.vmName,
        spec_json: req.specJson,
        labels: req.labels,
        restart_policy: req.restartPolicy,
        source_node: req.sourceNode,
        kind: req.kind,
        max_downtime_ms: req.maxDowntimeMs,
      },
      60_000,
    );
    return { nodeId: r.node_id, dwcpPort: r.dwcp_port };
  }

  async awaitLoaded(migrationId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    await this.#call('AwaitLoaded', { migration_id: migrationId }, timeoutMs, signal);
  }

  async resume(migrationId: string): Promise<number> {
    const r = await this.#call<{ resumed_at_us: number }>('Resume', { migration_id: migrationId }, 30_000);
    return r.resumed_at_us;
  }

  async abort(migrationId: string): Promise<AbortOutcome> {
    const r = await this.#call<{ outcome: string; resumed_at_us: number }>(
      'Abort',
      { migration_id: migrationId },
      30_000,
    );
    const outcome = r.outcome === 'committed' ? 'committed' : r.outcome === 'unknown' ? 'unknown' : 'aborted';
    return { outcome, ...(r.resumed_at_us ? { resumedAtUs: r.resumed_at_us } : {}) };
  }

  async get(migrationId: string): Promise<PeerMigrationView> {
    const r = await this.#call<{
      migration_id: string;
      vm_id: string;
      state: string;
      phase: string;
      error: string;
    }>('Get', { migration_id: migrationId }, 10_000);
    return {
      migrationId: r.migration_id,
      vmId: r.vm_id,
      state: r.state,
      phase: r.phase,
      error: r.error === '' ? null : r.error,
    };
  }

  async commitCold(migrationId: string, disks: readonly ColdDisk[]): Promise<void> {
    await this.#call(
      'CommitCold',
      {
        migration_id: migrationId,
        disks: disks.map((d) => ({ name: d.name, format: d.format, read_only: d.readOnly })),
      },
      60_000,
    );
  }

  close(): void {
    this.#client.close();
  }
}

/** True when a peer call failed in transport (the peer may or may not have acted). */
export function isTransportFailure(err: unknown): boolean {
  return (
    err instanceof NovaCronError && (err.details as { transport?: boolean } | undefined)?.transport === true
  );
}
