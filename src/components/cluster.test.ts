// Pure parts of the cluster wiring: the membership record from an announcement, the write guard's rule,
// readiness while fenced, and the `cluster status` text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostPortOf, nodeInfoOf } from './cluster.js';
import { isApiWrite } from '../api/rest/cluster.js';
import { deriveReadiness, readinessHttpStatus } from '../boot/runtime.js';
import { renderStatus } from '../cli/cluster.js';

test('nodeInfoOf: REST host:port first, then gRPC; capacity in the membership units; the URLs peers dial', () => {
  const info = nodeInfoOf({
    id: 'n1',
    name: 'h',
    apiUrl: 'https://[::1]:8090',
    grpcAddress: '127.0.0.1:9090',
    driver: 'sim',
    capacity: { cpus: 4, memoryMib: 8192, diskMib: 20 * 1024 + 5 },
    labels: { zone: 'a' },
  });
  assert.deepEqual(info, {
    id: 'n1',
    addresses: ['[::1]:8090', '127.0.0.1:9090'],
    capacity: { cpus: 4, memoryMiB: 8192, diskGiB: 20 },
    labels: { zone: 'a' },
    driver: 'sim',
    // gRPC shares the API's TLS: https when the API serves it
    grpcUrl: 'https://127.0.0.1:9090',
    apiUrl: 'https://[::1]:8090',
  });
  assert.equal(hostPortOf('not a url'), 'not a url');
  assert.deepEqual(
    nodeInfoOf({
      ...{
        id: 'n',
        name: 'h',
        apiUrl: '',
        grpcAddress: '',
        driver: 'sim',
        capacity: { cpus: 1, memoryMib: 1, diskMib: 0 },
        labels: {},
      },
    }).addresses,
    [],
  );
});

test('isApiWrite: non-safe methods under /api/v1/ only', () => {
  assert.equal(isApiWrite('POST', '/api/v1/vms'), true);
  assert.equal(isApiWrite('DELETE', '/api/v1/vms/x'), true);
  assert.equal(isApiWrite('PATCH', '/api/v1/vms/x'), true);
  assert.equal(isApiWrite('GET', '/api/v1/vms'), false);
  assert.equal(isApiWrite('HEAD', '/api/v1/cluster'), false);
  assert.equal(isApiWrite('POST', '/health/ready'), false);
});

test('readiness: a fenced running node is partitioned (503); starting and stopping win over it', () => {
  const rows = [{ name: 'cluster', status: 'down' as const, detail: 'partitioned' }];
  const r = deriveReadiness('ready', 'datacenter', rows, new Set(['cluster']), true);
  assert.equal(r.status, 'partitioned');
  assert.equal(readinessHttpStatus(r), 503);
  assert.equal(deriveReadiness('starting', 'datacenter', rows, new Set(), true).status, 'starting');
  assert.equal(deriveReadiness('ready', 'datacenter', [], new Set(), false).status, 'ready');
});

test('renderStatus: leader, etcd session and one row per node with role and self', () => {
  const text = renderStatus(
    {
      mode: 'etcd',
      self: 'a',
      leader: 'b',
      nodes: [
        { id: 'a', status: 'ready', address: '127.0.0.1:1' },
        { id: 'b', status: 'ready', address: '127.0.0.1:2' },
        { id: 'c', status: 'down', address: '127.0.0.1:3' },
      ],
      etcd: {
        endpoints: ['http://127.0.0.1:2379'],
        prefix: '/novacron/',
        region: 'r',
        session: 'ready',
        leaseTtlSeconds: 10,
        lastKeepaliveAgoMs: 120,
        registered: true,
      },
    },
    'ready',
  );
  assert.match(text, /leader:\s+b/);
  assert.match(text, /members:\s+2 live of 3 known/);
  assert.match(text, /^a\s+ready\s+127\.0\.0\.1:1\s+\*$/m);
  assert.match(text, /^b\s+ready\s+127\.0\.0\.1:2\s+leader$/m);
  assert.match(text, /^c\s+down/m);
});
