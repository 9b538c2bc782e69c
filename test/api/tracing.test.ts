// OpenTelemetry export against a local HTTP server receiving OTLP/HTTP (JSON): the boot trace (a
// root span and one child per component) and one span per REST request, continuing a traceparent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { startTestNode, type TestNode } from './node-harness.js';

interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: { key: string; value: Record<string, unknown> }[];
}

let n: TestNode;
let collector: Server;
const spans: OtlpSpan[] = [];
const resources: unknown[] = [];
let received: (() => void) | null = null;

before(async () => {
  collector = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      assert.equal(req.url, '/v1/traces');
      const doc = JSON.parse(body) as {
        resourceSpans: { resource: unknown; scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const rs of doc.resourceSpans) {
        resources.push(rs.resource);
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      received?.();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const port = (collector.address() as { port: number }).port;
  n = await startTestNode({ set: { 'monitoring.tracing.endpoint': `http://127.0.0.1:${port}/v1/traces` } });
});

after(async () => {
  await n?.stop();
  collector.close();
});

async function flushAndWait(until: () => boolean): Promise<void> {
  const tracing = n.node.services.tracing;
  assert.ok(tracing, 'tracing service published');
  while (!until()) {
    const got = new Promise<void>((resolve) => (received = resolve));
    await tracing.flush();
    if (!until()) await got;
  }
}

test('the boot is exported as one trace: novacron.boot with a child span per component', async () => {
  await flushAndWait(() => spans.some((s) => s.name === 'novacron.boot'));
  const root = spans.find((s) => s.name === 'novacron.boot')!;
  const children = spans.filter((s) => s.parentSpanId === root.spanId);
  const names = children.map((s) => s.name);
  for (const c of ['data-dir', 'security', 'api', 'grpc', 'database'])
    assert.ok(names.includes(`boot.component ${c}`), c);
  assert.ok(children.every((s) => s.traceId === root.traceId));
  assert.match(JSON.stringify(resources), /"service\.name".*"novacron"/);
});

test('a REST request is a span with method, route and status, continuing the caller traceparent', async () => {
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const res = await fetch(`${n.url}/api/v1/vms`, {
    headers: { authorization: `Bearer ${n.adminToken}`, traceparent: `00-${traceId}-b7ad6b7169203331-01` },
  });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  await flushAndWait(() => spans.some((s) => s.name === 'HTTP GET /api/v1/vms'));
  const span = spans.find((s) => s.name === 'HTTP GET /api/v1/vms')!;
  assert.equal(span.traceId, traceId);
  assert.equal(span.parentSpanId, 'b7ad6b7169203331');
  const attr = Object.fromEntries(span.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
  assert.equal(attr['http.route'], '/api/v1/vms');
  assert.equal(Number(attr['http.response.status_code']), 200);
  assert.equal(attr['novacron.token.scope'], 'admin');
});
