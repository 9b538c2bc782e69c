// The gRPC server on api.grpc_port: the standard health service (SERVING only while the node is
// ready or degraded), server reflection over every registered service, and bearer-token
// authorisation of every other service. Subsystems add their services through `addService`, before
// or after the server listens (late services are served and reflected as soon as they are added).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync, type PackageDefinition, type Options as LoaderOptions } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { NovaCronError, ErrorCode, ensureNovaCronError } from '../../errors.js';
import type { SecurityService } from '../../security/index.js';
import type { TlsMaterial } from '../../security/tls.js';
import { bearerToken, type TokenScope } from '../../security/tokens.js';
import { grpcStatusOf } from '../errors.js';

/** proto-loader options every NovaCron proto is loaded with (field names as written in .proto). */
export const PROTO_LOADER_OPTIONS: LoaderOptions = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Directory of NovaCron's own .proto files (proto/ at the package root). */
export const PROTO_ROOT = join(dirname(new URL(import.meta.url).pathname), '../../../proto');

export interface GrpcServiceRegistration {
  /** Service definition, e.g. `(grpc.loadPackageDefinition(pkg).novacron.v1.NodeService).service`. */
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
  /** The proto-loader package definition the service came from, so reflection can describe it. */
  readonly packageDefinition?: PackageDefinition;
  /** Methods (by name as in the .proto) a read-scope token may call; every other method needs admin. */
  readonly readMethods?: readonly string[];
  /**
   * Replaces bearer API-token authorisation for this service (e.g. node-to-node services that accept
   * only the cluster's join token). Rejects with a NovaCronError (unauthenticated) to refuse the call.
   */
  readonly authorize?: (metadata: grpc.Metadata) => Promise<void>;
}

/** What the grpc component publishes in `services.grpc`. */
export interface GrpcRegistry {
  /**
   * Adds a service, authorised by bearer token (`authorization: Bearer <token>` metadata).
   * Callable before or after the server listens; throws when a method path is already served.
   */
  addService(registration: GrpcServiceRegistration): void;
  /** Fully-qualified names of the services served (health, reflection and registered ones). */
  serviceNames(): string[];
  /** Port bound (useful with api.grpc_port 0). */
  readonly port: number;
  /** `host:port` to dial. */
  readonly address: string;
  readonly tls: boolean;
}

declare module '../../boot/services.js' {
  interface Services {
    grpc?: GrpcRegistry;
  }
}

/** Server credentials with TLS 1.3 as the minimum (grpc-js's createSsl does not let us set it). */
class Tls13ServerCredentials extends grpc.ServerCredentials {
  constructor(material: TlsMaterial) {
    super(
      { minVersion: 'TLSv1.3', requestCert: false },
      { key: material.key, cert: material.cert, minVersion: 'TLSv1.3' },
    );
  }
  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** Turns anything thrown into a gRPC status error with NovaCron's code in the details. */
export function toGrpcError(err: unknown): grpc.ServiceError {
  const e = ensureNovaCronError(err);
  const message = e.code === 'internal' ? (e.message.split('\n')[0] ?? 'internal error') : e.message;
  const meta = new grpc.Metadata();
  meta.set('novacron-error-code', e.code);
  return Object.assign(new Error(message), {
    code: grpcStatusOf(e),
    details: message,
    metadata: meta,
  });
}

type AnyHandler = (call: unknown, callback?: unknown) => void;

/** Wraps every method of `reg` so it runs only after the caller's token is authorised. */
function withAuth(
  reg: GrpcServiceRegistration,
  security: SecurityService,
): grpc.UntypedServiceImplementation {
  const wrapped: grpc.UntypedServiceImplementation = {};
  const readMethods = new Set(reg.readMethods ?? []);
  for (const [name, attrs] of Object.entries(reg.definition)) {
    const original = (reg.implementation[name] ??
      (attrs.originalName ? reg.implementation[attrs.originalName] : undefined)) as AnyHandler | undefined;
    if (original === undefined) continue; // grpc-js answers UNIMPLEMENTED
    const need: TokenScope =
      readMethods.has(name) || (attrs.originalName !== undefined && readMethods.has(attrs.originalName))
        ? 'read'
        : 'admin';
    const unaryLike = !attrs.responseStream;
    const handler: AnyHandler = (call, callback) => {
      const c = call as grpc.ServerUnaryCall<unknown, unknown>;
      const token = bearerToken(c.metadata.get('authorization').map(String));
      const check = reg.authorize
        ? reg.authorize(c.metadata)
        : security.tokens.authorize(token, need).then(() => undefined);
      check.then(
        () => original.call(reg.implementation, call, callback),
        (err: unknown) => {
          if (unaryLike) (callback as grpc.sendUnaryData<unknown>)(toGrpcError(err));
          else (call as NodeJS.EventEmitter).emit('error', toGrpcError(err));
        },
      );
    };
    wrapped[name] = handler as grpc.UntypedHandleCall;
  }
  return wrapped;
}

function reflectionProtoPaths(): string[] {
  const require = createRequire(import.meta.url);
  const root = join(dirname(require.resolve('@grpc/reflection')), '../proto/grpc/reflection');
  return [join(root, 'v1/reflection.proto'), join(root, 'v1alpha/reflection.proto')];
}

/** The options @grpc/reflection loads its own protos with: its handlers expect messages decoded this way. */
const REFLECTION_LOADER_OPTIONS: LoaderOptions = {
  longs: String,
  enums: String,
  bytes: Array,
  defaults: true,
  oneofs: true,
};

const REFLECTION_SERVICES = [
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
];

export interface GrpcServerOptions {
  readonly host: string;
  readonly port: number;
  readonly security: SecurityService;
  /** Config key that sets the port, named in listener errors. */
  readonly portKey?: string;
}

/** The node's gRPC server. Create, add services, `listen`, then `setServing` as readiness changes. */
export class NovaCronGrpcServer implements GrpcRegistry {
  readonly #server = new grpc.Server();
  readonly #health = new HealthImplementation({ '': 'NOT_SERVING' });
  readonly #options: GrpcServerOptions;
  readonly #names = new Set<string>();
  /** Package definitions reflection describes; the health proto is loaded on the first reflection call. */
  #packages: PackageDefinition[] = [];
  /** Reflection handlers by service name; null until the first reflection call after a change. */
  #reflection: Record<string, grpc.UntypedServiceImplementation> | null = null;
  #serving = false;
  #port = 0;

  constructor(options: GrpcServerOptions) {
    this.#options = options;
    this.#health.addToServer(this.#server);
    this.#names.add('grpc.health.v1.Health');
    this.#installReflection();
  }

  get port(): number {
    return this.#port;
  }

  get address(): string {
    const h = this.#options.host.includes(':') ? `[${this.#options.host}]` : this.#options.host;
    return `${h}:${this.#port}`;
  }

  get tls(): boolean {
    return this.#options.security.tls !== null;
  }

  serviceNames(): string[] {
    return [...this.#names].sort();
  }

  addService(reg: GrpcServiceRegistration): void {
    this.#server.addService(reg.definition, withAuth(reg, this.#options.security));
    for (const attrs of Object.values(reg.definition)) {
      const m = /^\/([^/]+)\//.exec(attrs.path);
      if (m) {
        this.#names.add(m[1]!);
        this.#health.setStatus(m[1]!, this.#serving ? 'SERVING' : 'NOT_SERVING');
      }
    }
    if (reg.packageDefinition) {
      this.#packages.push(reg.packageDefinition);
      this.#reflection = null;
    }
  }

  /**
   * Reflection is registered once, with handlers that delegate to a ReflectionService built on the
   * first reflection call after a service was added (building one parses protos: kept off the boot path).
   */
  #installReflection(): void {
    const defs = grpc.loadPackageDefinition(loadSync(reflectionProtoPaths(), REFLECTION_LOADER_OPTIONS));
    for (const name of REFLECTION_SERVICES) {
      const ctor = name.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], defs) as
        grpc.ServiceClientConstructor | undefined;
      if (!ctor) throw new Error(`reflection proto lacks ${name}`);
      this.#names.add(name);
      this.#server.addService(ctor.service, {
        ServerReflectionInfo: (stream: grpc.ServerDuplexStream<unknown, unknown>) => {
          const impl = this.#reflectionHandlers()[name]?.ServerReflectionInfo as
            ((s: unknown) => void) | undefined;
          if (impl) impl(stream);
          else stream.emit('error', { code: grpc.status.UNIMPLEMENTED, details: `${name} unavailable` });
        },
      });
    }
  }

  #reflectionHandlers(): Record<string, grpc.UntypedServiceImplementation> {
    if (this.#reflection) return this.#reflection;
    const handlers: Record<string, grpc.UntypedServiceImplementation> = {};
    const base = loadSync([healthProtoPath, ...reflectionProtoPaths()], PROTO_LOADER_OPTIONS);
    const merged = Object.assign({}, base, ...this.#packages) as PackageDefinition;
    new ReflectionService(merged).addToServer({
      addService: (definition: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => {
        const path = Object.values(definition)[0]?.path ?? '';
        handlers[/^\/([^/]+)\//.exec(path)?.[1] ?? path] = impl;
      },
    });
    this.#reflection = handlers;
    return handlers;
  }

  /** Binds host:port (TLS when the security service has material); errors name the port and its key. */
  async listen(): Promise<number> {
    const { host, port, security } = this.#options;
    const key = this.#options.portKey ?? 'api.grpc_port';
    const creds = security.tls
      ? new Tls13ServerCredentials(security.tls)
      : grpc.ServerCredentials.createInsecure();
    const target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(target, creds, (err, bound) => {
        if (!err) return resolve(bound);
        const inUse = /EADDRINUSE/.test(err.message);
        reject(
          new NovaCronError(
            inUse ? ErrorCode.PortInUse : ErrorCode.ResourceUnavailable,
            inUse
              ? `port ${port} (${key}) is already in use on ${host}`
              : `cannot listen on ${host}:${port} (${key}): ${err.message}`,
            { key, hint: `stop what uses it, or set ${key} to a free port`, cause: err },
          ),
        );
      });
    });
    return this.#port;
  }

  /** Health status of the whole server ('') and of every registered service. */
  setServing(serving: boolean): void {
    this.#serving = serving;
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    this.#health.setStatus('', status);
    for (const name of this.#names) this.#health.setStatus(name, status);
  }

  get serving(): boolean {
    return this.#serving;
  }

  /** Stops accepting calls; waits up to `graceMs` for running calls, then cancels them. */
  async stop(graceMs: number): Promise<void> {
    this.setServing(false);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
