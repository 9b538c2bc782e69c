// Service component "api": the REST server (Fastify) with health, boot timeline, metrics, OpenAPI
// and every resource's routes, listening on api.host:api.rest_port.
import type { FastifyInstance } from 'fastify';
import { NovaCronError, ErrorCode } from '../errors.js';
import type { Component } from '../boot/component.js';
import { requireService } from '../boot/services.js';
import { buildRestServer, type RoutePlugin } from '../api/rest/server.js';
import { envNameOf } from './resources.js';

export interface ApiEndpoint {
  /** Base URL of the REST API, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly app: FastifyInstance;
}

declare module '../boot/services.js' {
  interface Services {
    api?: ApiEndpoint;
  }
}

export function apiComponent(options: {
  dependsOn: readonly string[];
  plugins?: readonly RoutePlugin[];
}): Component {
  let app: FastifyInstance | null = null;
  let url = '';
  return {
    name: 'api',
    phase: 'service',
    dependsOn: options.dependsOn,
    critical: true,
    async start(ctx) {
      const runtime = requireService(ctx.services, 'runtime');
      app = await buildRestServer(
        {
          config: ctx.config,
          logger: ctx.logger,
          registry: ctx.metrics,
          runtime,
          events: ctx.events,
          services: ctx.services,
        },
        options.plugins ?? [],
      );
      const { host, rest_port: port } = ctx.config.api;
      try {
        await app.listen({ host, port });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        await app.close();
        app = null;
        throw new NovaCronError(
          code === 'EADDRINUSE' ? ErrorCode.PortInUse : ErrorCode.ResourceUnavailable,
          code === 'EADDRINUSE'
            ? `port ${port} (api.rest_port) is already in use on ${host}`
            : `cannot listen on ${host}:${port} (api.rest_port): ${(err as Error).message}`,
          { key: 'api.rest_port', hint: `set api.rest_port (env ${envNameOf('api.rest_port')})`, cause: err },
        );
      }
      const addr = app.server.address();
      const boundPort = typeof addr === 'object' && addr ? addr.port : port;
      const shownHost = host.includes(':') ? `[${host}]` : host;
      url = `${ctx.services.security?.tls ? 'https' : 'http'}://${shownHost}:${boundPort}`;
      ctx.services.api = { url, app };
    },
    async stop() {
      await app?.close();
      app = null;
    },
    health: () => (app ? { status: 'up', detail: url } : { status: 'down', detail: 'not listening' }),
  };
}
