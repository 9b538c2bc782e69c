// novacron.v1.VmService over gRPC against a real node (sim driver): create, get, list, patch labels,
// stop, start, restart, console, delete, and the error statuses (INVALID_ARGUMENT naming the field,
// RESOURCE_EXHAUSTED with the message format, NOT_FOUND, UNAUTHENTICATED without a token).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS } from '../../src/api/grpc/server.js';
import { VM_PROTO } from '../../src/api/grpc/vm-service.js';
import { startTestNode, type TestNode } from '../api/node-harness.js';

const pkg = grpc.loadPackageDefinition(loadSync(VM_PROTO, PROTO_LOADER_OPTIONS)) as unknown as {
  novacron: { v1: { VmService: grpc.ServiceClientConstructor } };
};

let n: TestNode;
let client: grpc.Client;

before(async () => {
  n = await startTestNode({ set: { 'vm.driver': 'sim', 'node.capacity.cpus': 4 } });
  client = new pkg.novacron.v1.VmService(`127.0.0.1:${n.grpcPort}`, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await n?.stop();
});

function call<T>(method: string, req: object, token: string | null = n.adminToken): Promise<T> {
  const meta = new grpc.Metadata();
  if (token) meta.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    (
      client as unknown as Record<
        string,
        (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: T) => void) => void
      >
    )[method]!(req, meta, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

interface Vm {
  id: string;
  name: string;
  state: string;
  node: string;
  labels: Record<string, string>;
  driver: string;
}

test('VmService: create, get, list, patch, stop, start, restart, console, delete', async () => {
  const vm = await call<Vm>('CreateVm', { name: 'g-1', cpus: 2, memory_mib: 256, labels: { a: '1' } });
  assert.equal(vm.state, 'running');
  assert.equal(vm.node, 'novacron-node-1');
  assert.equal(vm.driver, 'sim');
  assert.equal((await call<Vm>('GetVm', { id: 'g-1' })).id, vm.id);
  const list = await call<{ items: Vm[]; next_cursor: string }>('ListVms', { label_selector: 'a=1' });
  assert.deepEqual(
    list.items.map((v) => v.name),
    ['g-1'],
  );
  assert.equal(list.next_cursor, '');
  const p = await call<Vm>('PatchVmLabels', { id: vm.id, labels: { b: '2' }, remove_labels: ['a'] });
  assert.deepEqual(p.labels, { b: '2' });
  assert.equal((await call<Vm>('StopVm', { id: 'g-1', force: true })).state, 'stopped');
  assert.equal((await call<Vm>('StartVm', { id: 'g-1' })).state, 'running');
  assert.equal((await call<Vm>('RestartVm', { id: 'g-1' })).state, 'running');
  assert.equal((await call<{ simulated: boolean }>('GetVmConsole', { id: 'g-1' })).simulated, true);
  const again = await call<Vm>('CreateVm', { name: 'g-2', cpus: 1, memory_mib: 64, idempotency_key: 'x' });
  assert.equal(
    (await call<Vm>('CreateVm', { name: 'g-2', cpus: 1, memory_mib: 64, idempotency_key: 'x' })).id,
    again.id,
  );
  await call('DeleteVm', { id: 'g-1' });
  await call('DeleteVm', { id: 'g-2' });
  await assert.rejects(
    call('GetVm', { id: 'g-1' }),
    (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
  );
});

test('VmService errors: INVALID_ARGUMENT names the field, RESOURCE_EXHAUSTED, UNAUTHENTICATED', async () => {
  await assert.rejects(call('CreateVm', { name: 'bad', cpus: 0, memory_mib: 64 }), (e: grpc.ServiceError) => {
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.match(e.details, /cpus/);
    return true;
  });
  await assert.rejects(
    call('CreateVm', { name: 'huge', cpus: 5, memory_mib: 64 }),
    (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(e.details, /^resource exhausted: cpus \(requested 5, free 4\)/);
      return true;
    },
  );
  await assert.rejects(
    call('ListVms', {}, null),
    (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED,
  );
});
