// TLS with security.tls.enabled=on on loopback (a non-loopback bind needs an address this sandbox
// does not have; the auto rule itself is unit-tested in src/security/tls.test.ts): the node
// generates a CA and a server certificate into the data dir, REST and gRPC serve TLS 1.3 only,
// and a client trusting the generated CA connects.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProto } from 'grpc-health-check';
import { PROTO_LOADER_OPTIONS } from '../../src/api/grpc/server.js';
import { startTestNode, type TestNode } from './node-harness.js';

let n: TestNode;
let ca: string;

before(async () => {
  n = await startTestNode({ set: { 'security.tls.enabled': 'on' } });
  ca = readFileSync(join(n.dataDir, 'tls', 'ca.crt'), 'utf8');
});
after(async () => {
  await n?.stop();
});

function httpsGet(path: string, token?: string): Promise<{ status: number; body: string; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${n.url}${path}`,
      { ca, headers: token ? { authorization: `Bearer ${token}` } : {} },
      (res) => {
        const protocol = (res.socket as TLSSocket).getProtocol() ?? '';
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            protocol,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function tlsHandshake(
  port: number,
  options: { maxVersion?: 'TLSv1.2'; ALPNProtocols?: string[] },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options }, () => {
      const p = s.getProtocol() ?? '';
      s.end();
      resolve(p);
    });
    s.once('error', reject);
  });
}

test('the generated CA, server certificate and keys are in <data_dir>/tls with mode 0600', () => {
  for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key']) {
    assert.equal(statSync(join(n.dataDir, 'tls', f)).mode & 0o777, 0o600, f);
  }
  assert.match(n.url, /^https:\/\/127\.0\.0\.1:\d+$/);
});

test('REST over TLS 1.3 with the generated CA trusted; auth still applies', async () => {
  const ok = await httpsGet('/api/v1/vms', n.adminToken);
  assert.equal(ok.status, 200);
  assert.equal(ok.protocol, 'TLSv1.3');
  assert.equal((await httpsGet('/api/v1/vms')).status, 401);
});

test('REST and gRPC refuse TLS 1.2 clients', async () => {
  await assert.rejects(tlsHandshake(n.restPort, { maxVersion: 'TLSv1.2' }));
  await assert.rejects(tlsHandshake(n.grpcPort, { maxVersion: 'TLSv1.2', ALPNProtocols: ['h2'] }));
  assert.equal(await tlsHandshake(n.grpcPort, { ALPNProtocols: ['h2'] }), 'TLSv1.3');
});

test('gRPC health over TLS with the generated CA', async () => {
  const pkg = grpc.loadPackageDefinition(loadSync(healthProto, PROTO_LOADER_OPTIONS)) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const client = new pkg.grpc.health.v1.Health(
    `localhost:${n.grpcPort}`,
    grpc.credentials.createSsl(Buffer.from(ca)),
  );
  try {
    const status = await new Promise<string>((resolve, reject) => {
      (
        client as unknown as {
          Check(r: object, cb: (e: grpc.ServiceError | null, r: { status: string }) => void): void;
        }
      ).Check({ service: '' }, (err, res) => (err ? reject(err) : resolve(res.status)));
    });
    assert.ok(['SERVING', 'NOT_SERVING'].includes(status));
  } finally {
    client.close();
  }
  // A client that does not trust the CA fails the handshake.
  const untrusting = new pkg.grpc.health.v1.Health(`localhost:${n.grpcPort}`, grpc.credentials.createSsl());
  try {
    await assert.rejects(
      new Promise((resolve, reject) => {
        (
          untrusting as unknown as {
            Check(
              r: object,
              o: { deadline: number },
              cb: (e: grpc.ServiceError | null, r: unknown) => void,
            ): void;
          }
        ).Check({ service: '' }, { deadline: Date.now() + 5000 }, (err, res) =>
          err ? reject(err) : resolve(res),
        );
      }),
    );
  } finally {
    untrusting.close();
  }
});
