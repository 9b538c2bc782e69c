import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NovaCronConfig } from '../../config/schema.js';
import { selectVmDriver } from './select-driver.js';

const vm = (over: Partial<NovaCronConfig['vm']>): NovaCronConfig['vm'] => ({
  driver: 'auto',
  qemu_binary: 'qemu-system-x86_64',
  qemu_img_binary: 'qemu-img',
  accel: 'tcg',
  stop_grace_seconds: 10,
  ...over,
});

test('auto falls back to sim with a warning when the binary is missing', async () => {
  const s = await selectVmDriver(vm({ qemu_binary: '/nonexistent/qemu-system-x86_64' }));
  assert.equal(s.driver.name, 'sim');
  assert.ok(s.warning?.includes('SIMULATED'));
  assert.ok(s.reason.includes('not found'));
});

test('explicit choices are honoured; a forced qemu without binary is undetected, not an error', async () => {
  assert.equal((await selectVmDriver(vm({ driver: 'sim' }))).driver.name, 'sim');
  const forced = await selectVmDriver(vm({ driver: 'qemu', qemu_binary: '/nonexistent/qemu' }));
  assert.equal(forced.driver.name, 'qemu');
  assert.ok(forced.warning);
  assert.equal((await forced.driver.health()).status, 'undetected');
});

test('a binary that exists but fails is unhealthy', async () => {
  const s = await selectVmDriver(vm({ driver: 'qemu', qemu_binary: '/bin/false' }));
  assert.equal((await s.driver.health()).status, 'unhealthy');
});
