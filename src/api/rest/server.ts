// Builds the REST server (Fastify): one error body everywhere, request metrics, and the route
// plugins of each resource. Listening is the api component's job; tests use `app.inject`.
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NovaCronConfig } from '../../config/schema.js';
import type { EventBus } from '../../boot/events.js';
import type { Services } from '../../boot/services.js';
import type { NodeRuntime } from '../../boot/runtime.js';
import { createHttpMetrics } from '../../observability/metrics.js';
import { toErrorBody } from '../errors.js';
import { healthRoutes } from './health.js';
import { systemRoutes } from './system.js';
import { authHook } from './auth.js';
import { registerRequestTracing } from './request-tracing.js';
import { vmRoutes } from './vms.js';
import { migrationRoutes } from './migrations.js';
import { clusterRoutes, fenceGuard } from './cluster.js';
import { forwardToOwner } from './forward.js';
import { eventsWebSocketRoute } from '../ws/events.js';
import { MIN_TLS_VERSION } from '../../security/tls.js';

export interface RestServerDeps {
  readonly config: NovaCronConfig;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly runtime: NodeRuntime;
  readonly events: EventBus;
  readonly services: Services;
}

/** Extra route plugins (registered by other subsystems' wiring). */
export type RoutePlugin = (app: FastifyInstance, deps: RestServerDeps) => Promise<void> | void;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without a token (health, metrics, OpenAPI). */
    public?: boolean;
    /** Scope a token needs for this route; `read` by default for GET, `admin` otherwise. */
    scope?: 'read' | 'admin';
  }
}

const FRAMEWORK_CODES: Record<number, string> = {
  400: 'validation',
  404: 'not_found',
  405: 'validation',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

export async function buildRestServer(
  deps: RestServerDeps,
  plugins: readonly RoutePlugin[] = [],
): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.config.api.body_limit_bytes,
    ...(deps.services.security?.tls
      ? {
          https: {
            key: deps.services.security.tls.key,
            cert: deps.services.security.tls.cert,
            minVersion: MIN_TLS_VERSION,
          },
        }
      : {}),
    ajv: { customOptions: { allErrors: true, coerceTypes: 'array', removeAdditional: false } },
  }) as unknown as FastifyInstance;

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'NovaCron API', version: '1', description: 'VM control plane REST API' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });
  registerRequestTracing(app, deps.services);
  // Every route needs a token unless marked `config: { public: true }` (see auth.ts).
  app.addHook('onRequest', authHook(deps.services.security));
  // While fenced from the region's etcd, API writes are refused (503); reads go on.
  app.addHook('onRequest', fenceGuard(deps.services));
  // In a region, start/stop/restart/delete of a VM that runs on another live member go to that member.
  app.addHook('preHandler', forwardToOwner(deps.services, deps.config.vm.stop_grace_seconds * 1000 + 30_000));
  app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger());

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const fw = err.statusCode !== undefined && err.statusCode < 500 && FRAMEWORK_CODES[err.statusCode];
    if (err.validation) {
      return reply.status(400).send({
        error: {
          code: 'validation',
          message: `invalid request ${err.validationContext ?? ''}: ${err.message}`.replace('  ', ' '),
          details: err.validation.map((v) => ({ path: v.instancePath || v.params, message: v.message })),
        },
      });
    }
    if (fw) {
      const message =
        err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || /JSON/.test(err.message)
          ? `malformed JSON body: ${err.message}`
          : err.message;
      return reply.status(err.statusCode!).send({ error: { code: fw, message, details: null } });
    }
    const { status, body } = toErrorBody(err);
    if (status >= 500) request.log.error({ err }, 'request failed');
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({
      error: { code: 'not_found', message: `no route ${request.method} ${request.url}`, details: null },
    }),
  );

  const http = createHttpMetrics(deps.registry);
  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    };
    http.duration.observe(labels, reply.elapsedTime / 1000);
    http.requests.inc(labels);
  });

  await app.register(async (scoped) => healthRoutes(scoped, deps));
  await app.register(async (scoped) => systemRoutes(scoped, deps));
  await app.register(async (scoped) => eventsWebSocketRoute(scoped, deps.events));
  await app.register(async (scoped) => vmRoutes(scoped, deps));
  await app.register(async (scoped) => migrationRoutes(scoped, deps));
  await app.register(async (scoped) => clusterRoutes(scoped, deps));
  for (const plugin of plugins) await app.register(async (scoped) => plugin(scoped, deps));
  return app;
}
