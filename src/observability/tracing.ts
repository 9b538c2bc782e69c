// OpenTelemetry traces over OTLP/HTTP (JSON), only when monitoring.tracing.endpoint is set: the
// SDK is imported on demand so a node without tracing never pays for it. Spans: one trace per
// boot (`novacron.boot`, a child per component, timed from the boot report) and one span per
// REST request (`HTTP <method> <route>`, continuing an incoming W3C `traceparent`).
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import type { NovaCronConfig } from '../config/schema.js';
import type { BootReport } from '../boot/orchestrator.js';

export interface Tracing {
  readonly tracer: Tracer;
  /** Emits the boot trace: a root span over the whole boot and one child per component. */
  recordBoot(report: BootReport): void;
  /** Starts a span for an incoming request; `traceparent` is the header value, if any. */
  startRequestSpan(name: string, attributes: Attributes, traceparent: string | undefined): Span;
  /** Exports everything buffered. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

declare module '../boot/services.js' {
  interface Services {
    tracing?: Tracing;
  }
}

/** Parses a W3C traceparent header (version 00); null when absent or malformed. Pure. */
export function parseTraceparent(
  header: string | undefined,
): { traceId: string; spanId: string; traceFlags: number } | null {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(header?.trim().toLowerCase() ?? '');
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return null;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: Number.parseInt(m[3]!, 16) };
}

/** Starts the tracer provider and OTLP/HTTP exporter; call only when an endpoint is configured. */
export async function startTracing(
  settings: NovaCronConfig['monitoring']['tracing'],
  identity: { nodeId: string; version: string },
): Promise<Tracing> {
  const [api, sdk, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const exporter = new OTLPTraceExporter({ url: settings.endpoint, timeoutMillis: 5000 });
  const provider = new sdk.TracerProvider({
    resource: resourceFromAttributes({
      'service.name': settings.service_name,
      'service.version': identity.version,
      'service.instance.id': identity.nodeId,
    }),
    sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(settings.sample_ratio) }),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter, scheduledDelayMillis: 1000 })],
  });
  const tracer = provider.getTracer('novacron', identity.version);

  const recordBoot = (report: BootReport): void => {
    if (report.startedAt === null) return;
    const t0 = Date.parse(report.startedAt);
    const root = tracer.startSpan(
      'novacron.boot',
      {
        startTime: t0,
        attributes: { 'novacron.boot.state': report.state, 'novacron.boot.parallel': report.parallel },
      },
      api.ROOT_CONTEXT,
    );
    const parent: Context = api.trace.setSpan(api.ROOT_CONTEXT, root);
    for (const c of report.components) {
      if (c.startedAt === null) continue;
      const span = tracer.startSpan(
        `boot.component ${c.name}`,
        {
          startTime: t0 + c.startedAt,
          attributes: {
            'novacron.component': c.name,
            'novacron.phase': c.phase,
            'novacron.level': c.level,
            'novacron.critical': c.critical,
            'novacron.status': c.status,
          },
        },
        parent,
      );
      if (c.error) span.setStatus({ code: api.SpanStatusCode.ERROR, message: c.error });
      span.end(t0 + c.startedAt + (c.durationMs ?? 0));
    }
    if (report.state === 'failed') root.setStatus({ code: api.SpanStatusCode.ERROR });
    root.end(t0 + (report.totalMs ?? 0));
  };

  const startRequestSpan = (name: string, attributes: Attributes, traceparent: string | undefined): Span => {
    const remote = parseTraceparent(traceparent);
    const ctx = remote
      ? api.trace.setSpanContext(api.ROOT_CONTEXT, { ...remote, isRemote: true })
      : api.ROOT_CONTEXT;
    return tracer.startSpan(name, { kind: api.SpanKind.SERVER, attributes }, ctx);
  };

  return {
    tracer,
    recordBoot,
    startRequestSpan,
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
