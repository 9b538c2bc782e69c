// One OpenTelemetry span per REST request when tracing is on (services.tracing): named
// `HTTP <method> <route template>`, with method, route, status and the token's scope; continues
// an incoming W3C traceparent. Costs one property read per request when tracing is off.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Span } from '@opentelemetry/api';
import type { Services } from '../../boot/services.js';
import type {} from '../../observability/tracing.js';

export function registerRequestTracing(app: FastifyInstance, services: Services): void {
  const spans = new WeakMap<FastifyRequest, Span>();
  app.addHook('onRequest', async (request) => {
    const tracing = services.tracing;
    if (!tracing) return;
    const route = request.routeOptions.url ?? 'unmatched';
    const header = request.headers.traceparent;
    spans.set(
      request,
      tracing.startRequestSpan(
        `HTTP ${request.method} ${route}`,
        {
          'http.request.method': request.method,
          'http.route': route,
          'url.path': request.url.split('?')[0] ?? '',
        },
        typeof header === 'string' ? header : undefined,
      ),
    );
  });
  app.addHook('onResponse', async (request, reply) => {
    const span = spans.get(request);
    if (!span) return;
    span.setAttribute('http.response.status_code', reply.statusCode);
    if (request.auth) span.setAttribute('novacron.token.scope', request.auth.scope);
    if (reply.statusCode >= 500) span.setStatus({ code: 2 });
    span.end();
  });
}
