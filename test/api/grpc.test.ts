// gRPC against a real node with a real gRPC client: the standard health service answers SERVING
// once the node is ready, reflection lists the services, NodeService needs a token (UNAUTHENTICATED
// without, PERMISSION_DENIED never for read methods), late services are served and reflected, and a
// taken port is an error naming api.grpc_port.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProto } from 'grpc-health-check';
import { NovaCronGrpcServer, PROTO_LOADER_OPTIONS } from '../../src/api/grpc/server.js';
import { NODE_PROTO } from '../../src/api/grpc/node-service.js';
import { createTestSecurity } from '../../src/security/testing.js';
import { NovaCronError } from '../../src/errors.js';
import { startTestNode, type TestNode } from './node-harness.js';

type Unary = (
  req: object,
  meta: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => void;

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = join(
  dirname(require.resolve('@grpc/reflection')),
  '../proto/grpc/reflection/v1/reflection.proto',
);

const pkg = grpc.loadPackageDefinition(
  loadSync([healthProto, REFLECTION_PROTO, NODE_PROTO], PROTO_LOADER_OPTIONS),
) as unknown as {
  grpc: {
    health: { v1: { Health: grpc.ServiceClientConstructor } };
    reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } };
  };
  novacron: { v1: { NodeService: grpc.ServiceClientConstructor } };
};

let n: TestNode;
before(async () => {
  n = await startTestNode();
});
after(async () => {
  await n?.stop();
});

function call<T>(client: grpc.Client, method: string, req: object, meta = new grpc.Metadata()): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, Unary>)[method]!.call(client, req, meta, (err, res) =>
      err ? reject(err) : resolve(res as T),
    );
  });
}

function tokenMeta(token: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${token}`);
  return m;
}

async function listServices(address: string, creds = grpc.credentials.createInsecure()): Promise<string[]> {
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, creds);
  try {
    type Answer = { list_services_response?: { service: { name: string }[] } };
    const stream = (
      client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<object, Answer> }
    ).ServerReflectionInfo();
    const answer = new Promise<string[]>((resolve, reject) => {
      stream.once('data', (res: Answer) =>
        resolve((res.list_services_response?.service ?? []).map((s) => s.name)),
      );
      stream.once('error', reject);
    });
    stream.write({ list_services: '' });
    const names = await answer;
    stream.end();
    return names.sort();
  } finally {
    client.close();
  }
}

test('grpc.health.v1.Health/Check answers SERVING for the server and for NodeService once ready', async () => {
  const client = new pkg.grpc.health.v1.Health(`127.0.0.1:${n.grpcPort}`, grpc.credentials.createInsecure());
  try {
    // Health follows readiness, which the node re-derives right after `node.ready`: Watch until SERVING.
    const watch = (
      client as unknown as { Watch(req: object): grpc.ClientReadableStream<{ status: string }> }
    ).Watch({ service: '' });
    await new Promise<void>((resolve, reject) => {
      watch.on('data', (r: { status: string }) => {
        if (r.status === 'SERVING') resolve();
      });
      watch.once('error', reject);
    });
    watch.cancel();
    const res = await call<{ status: string }>(client, 'Check', { service: '' });
    assert.equal(res.status, 'SERVING');
    const svc = await call<{ status: string }>(client, 'Check', { service: 'novacron.v1.NodeService' });
    assert.equal(svc.status, 'SERVING');
    await assert.rejects(call(client, 'Check', { service: 'no.such.Service' }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.NOT_FOUND);
      return true;
    });
  } finally {
    client.close();
  }
});

test('server reflection lists health, reflection and NovaCron services', async () => {
  const names = await listServices(`127.0.0.1:${n.grpcPort}`);
  for (const s of [
    'grpc.health.v1.Health',
    'grpc.reflection.v1.ServerReflection',
    'novacron.v1.NodeService',
  ]) {
    assert.ok(names.includes(s), `${s} in ${names.join(', ')}`);
  }
});

test('NodeService/GetReadiness: UNAUTHENTICATED without or with a bad token, the readiness with a token', async () => {
  const client = new pkg.novacron.v1.NodeService(
    `127.0.0.1:${n.grpcPort}`,
    grpc.credentials.createInsecure(),
  );
  try {
    for (const meta of [new grpc.Metadata(), tokenMeta('bad'), tokenMeta(`${n.adminToken}x`)]) {
      await assert.rejects(call(client, 'GetReadiness', {}, meta), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNAUTHENTICATED);
        assert.equal(err.metadata.get('novacron-error-code')[0], 'unauthenticated');
        return true;
      });
    }
    const r = await call<{ node_id: string; status: string; components: { name: string }[] }>(
      client,
      'GetReadiness',
      {},
      tokenMeta(n.adminToken),
    );
    assert.equal(r.node_id, n.node.nodeId);
    assert.ok(['ready', 'degraded'].includes(r.status));
    assert.ok(r.components.some((c) => c.name === 'grpc'));
  } finally {
    client.close();
  }
});

test('NodeService/WatchEvents streams the boot replay to a token holder and refuses others', async () => {
  const client = new pkg.novacron.v1.NodeService(
    `127.0.0.1:${n.grpcPort}`,
    grpc.credentials.createInsecure(),
  );
  try {
    type Ev = { type: string; data_json: string };
    const watchEvents = (req: object, meta?: grpc.Metadata) =>
      (
        client as unknown as {
          WatchEvents(req: object, meta?: grpc.Metadata): grpc.ClientReadableStream<Ev>;
        }
      ).WatchEvents(req, meta);
    const denied = watchEvents({ type_prefixes: [] });
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      denied.once('error', (e: grpc.ServiceError) => resolve(e)),
    );
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);

    const stream = watchEvents({ type_prefixes: ['node.'] }, tokenMeta(n.adminToken));
    const ready = await new Promise<{ type: string; data_json: string }>((resolve, reject) => {
      stream.on('data', (e: { type: string; data_json: string }) => {
        if (e.type === 'node.ready') resolve(e);
      });
      stream.once('error', reject);
    });
    assert.ok(['ready', 'degraded'].includes((JSON.parse(ready.data_json) as { state: string }).state));
    stream.cancel();
  } finally {
    client.close();
  }
});

test('a service added after listen is served, authorised by scope, health-tracked and reflected', async () => {
  const { security, adminToken, readToken } = await createTestSecurity();
  const server = new NovaCronGrpcServer({ host: '127.0.0.1', port: 0, security });
  const port = await server.listen();
  const health = new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    assert.equal((await call<{ status: string }>(health, 'Check', { service: '' })).status, 'NOT_SERVING');
    server.setServing(true);
    assert.equal((await call<{ status: string }>(health, 'Check', { service: '' })).status, 'SERVING');

    // Reuse NodeService's definition with a stub-free implementation of our own: GetReadiness
    // is declared admin-only here (no readMethods), so a read token gets PERMISSION_DENIED.
    const def = loadSync(NODE_PROTO, PROTO_LOADER_OPTIONS);
    const svc = (grpc.loadPackageDefinition(def) as unknown as typeof pkg).novacron.v1.NodeService;
    server.addService({
      definition: svc.service,
      packageDefinition: def,
      implementation: {
        GetReadiness: (_c: unknown, cb: grpc.sendUnaryData<unknown>) =>
          cb(null, { node_id: 'late', status: 'ready', mode: 'datacenter', components: [] }),
      },
    });
    const client = new svc(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const ok = await call<{ node_id: string }>(client, 'GetReadiness', {}, tokenMeta(adminToken));
      assert.equal(ok.node_id, 'late');
      await assert.rejects(
        call(client, 'GetReadiness', {}, tokenMeta(readToken)),
        (err: grpc.ServiceError) => {
          assert.equal(err.code, grpc.status.PERMISSION_DENIED);
          return true;
        },
      );
    } finally {
      client.close();
    }
    assert.equal(
      (await call<{ status: string }>(health, 'Check', { service: 'novacron.v1.NodeService' })).status,
      'SERVING',
    );
    assert.ok((await listServices(`127.0.0.1:${port}`)).includes('novacron.v1.NodeService'));
    assert.ok(server.serviceNames().includes('novacron.v1.NodeService'));
  } finally {
    health.close();
    await server.stop(1000);
  }
});

test('a taken gRPC port is an error naming the port and api.grpc_port', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  const { security } = await createTestSecurity();
  const server = new NovaCronGrpcServer({ host: '127.0.0.1', port, security });
  try {
    await assert.rejects(server.listen(), (err: unknown) => {
      assert.ok(err instanceof NovaCronError);
      assert.equal(err.code, 'port_in_use');
      assert.equal(err.key, 'api.grpc_port');
      assert.match(err.message, new RegExp(`port ${port} \\(api\\.grpc_port\\) is already in use`));
      return true;
    });
  } finally {
    await server.stop(100);
    blocker.close();
  }
});

test('stopping the node ends open WatchEvents streams (last test: it stops the shared node)', async () => {
  const client = new pkg.novacron.v1.NodeService(
    `127.0.0.1:${n.grpcPort}`,
    grpc.credentials.createInsecure(),
  );
  try {
    const meta = tokenMeta(n.adminToken);
    const stream = (
      client as unknown as {
        WatchEvents(req: object, meta: grpc.Metadata): grpc.ClientReadableStream<{ type: string }>;
      }
    ).WatchEvents({ type_prefixes: ['node.'] }, meta);
    const types: string[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (e: { type: string }) => types.push(e.type));
      stream.once('end', resolve);
      stream.once('error', reject);
    });
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    await n.stop();
    await ended;
    assert.ok(types.includes('node.stopping'), types.join(','));
  } finally {
    client.close();
  }
});
