import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidationError } from '../../../errors.js';
import type { VmSpec } from '../../driver.js';
import {
  buildQemuArgs,
  escapeOptValue,
  overlayPath,
  qemuArgsHash,
  qemuVmLayout,
  type QemuArgsInput,
} from './args.js';

const spec: VmSpec = {
  id: 'vm-1',
  name: 'web1',
  cpus: 2,
  memoryMib: 256,
  kernel: '/g/vmlinuz',
  initrd: '/g/initrd.img',
  cmdline: 'console=ttyS0 quiet',
  disks: [],
  network: { mode: 'none' },
  labels: {},
};
const { kernel: _k, initrd: _i, cmdline: _c, ...noBoot } = spec;
const { kernel: _k2, ...noKernel } = spec;
const layout = qemuVmLayout('/data/vms/vm-1');
const base: QemuArgsInput = { spec, layout, accel: 'tcg', disks: [] };

/** The value following `flag` each time it occurs. */
function values(args: readonly string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
}

test('layout puts every file in the VM directory', () => {
  assert.deepEqual(layout, {
    vmDir: '/data/vms/vm-1',
    qmpSocket: '/data/vms/vm-1/qmp.sock',
    serialLog: '/data/vms/vm-1/serial.log',
    pidFile: '/data/vms/vm-1/qemu.pid',
    handleFile: '/data/vms/vm-1/handle.json',
  });
  assert.equal(overlayPath('/d', 3), '/d/disk3.qcow2');
});

test('escapeOptValue doubles commas and nothing else', () => {
  for (const [input, out] of [
    ['plain', 'plain'],
    ['a,b', 'a,,b'],
    [',,', ',,,,'],
    ['', ''],
  ] as const)
    assert.equal(escapeOptValue(input), out);
});

test('argv table', () => {
  const cases: { name: string; input: QemuArgsInput; flag: string; expect: string[] }[] = [
    {
      name: 'qmp socket server',
      input: base,
      flag: '-chardev',
      expect: [
        'socket,id=qmp,path=/data/vms/vm-1/qmp.sock,server=on,wait=off',
        'file,id=serial0,path=/data/vms/vm-1/serial.log',
      ],
    },
    { name: 'qmp monitor', input: base, flag: '-mon', expect: ['chardev=qmp,mode=control'] },
    { name: 'serial to the chardev', input: base, flag: '-serial', expect: ['chardev:serial0'] },
    { name: 'tcg machine', input: base, flag: '-machine', expect: ['pc,accel=tcg'] },
    { name: 'kvm machine', input: { ...base, accel: 'kvm' }, flag: '-machine', expect: ['pc,accel=kvm'] },
    { name: 'tcg cpu model', input: base, flag: '-cpu', expect: ['qemu64'] },
    { name: 'kvm cpu model', input: { ...base, accel: 'kvm' }, flag: '-cpu', expect: ['host'] },
    {
      name: 'machine override',
      input: { ...base, machine: 'q35' },
      flag: '-machine',
      expect: ['q35,accel=tcg'],
    },
    { name: 'cpus', input: base, flag: '-smp', expect: ['2'] },
    { name: 'memory', input: base, flag: '-m', expect: ['256'] },
    { name: 'kernel', input: base, flag: '-kernel', expect: ['/g/vmlinuz'] },
    { name: 'initrd', input: base, flag: '-initrd', expect: ['/g/initrd.img'] },
    { name: 'cmdline', input: base, flag: '-append', expect: ['console=ttyS0 quiet'] },
    { name: 'pid file', input: base, flag: '-pidfile', expect: ['/data/vms/vm-1/qemu.pid'] },
    {
      name: 'name escaped',
      input: { ...base, spec: { ...spec, name: 'a,b' } },
      flag: '-name',
      expect: ['guest=a,,b,debug-threads=on'],
    },
    { name: 'no network', input: base, flag: '-nic', expect: ['none'] },
    {
      name: 'user network with forwards',
      input: {
        ...base,
        spec: {
          ...spec,
          network: {
            mode: 'user',
            hostForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 }],
          },
        },
      },
      flag: '-nic',
      expect: ['user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22'],
    },
    {
      name: 'disks become virtio drives',
      input: {
        ...base,
        disks: [
          { file: '/data/vms/vm-1/disk0.qcow2', format: 'qcow2', readOnly: false },
          { file: '/img/a,b.raw', format: 'raw', readOnly: true },
        ],
      },
      flag: '-drive',
      expect: [
        'id=disk0,file=/data/vms/vm-1/disk0.qcow2,format=qcow2,if=virtio,cache=writeback',
        'id=disk1,file=/img/a,,b.raw,format=raw,if=virtio,cache=writeback,readonly=on',
      ],
    },
    { name: 'incoming defer', input: { ...base, incoming: true }, flag: '-incoming', expect: ['defer'] },
    { name: 'no incoming by default', input: base, flag: '-incoming', expect: [] },
  ];
  for (const c of cases) assert.deepEqual(values(buildQemuArgs(c.input), c.flag), c.expect, c.name);
});

test('flags without values', () => {
  const plain = buildQemuArgs(base);
  for (const f of ['-nodefaults', '-no-user-config', '-daemonize']) assert.ok(plain.includes(f), f);
  assert.ok(!plain.includes('-S'));
  assert.ok(buildQemuArgs({ ...base, paused: true }).includes('-S'));
  assert.ok(!buildQemuArgs({ ...base, daemonize: false }).includes('-daemonize'));
  const bootless = buildQemuArgs({
    ...base,
    spec: noBoot,
  });
  assert.deepEqual(values(bootless, '-kernel'), []);
});

test('invalid inputs are ValidationErrors', () => {
  const bad: [string, QemuArgsInput][] = [
    ['zero cpus', { ...base, spec: { ...spec, cpus: 0 } }],
    ['fractional cpus', { ...base, spec: { ...spec, cpus: 1.5 } }],
    ['tiny memory', { ...base, spec: { ...spec, memoryMib: 8 } }],
    ['empty name', { ...base, spec: { ...spec, name: '' } }],
    ['initrd without kernel', { ...base, spec: noKernel }],
    ['socket path too long', { ...base, layout: qemuVmLayout(`/${'x'.repeat(120)}`) }],
    [
      'bad forward port',
      {
        ...base,
        spec: {
          ...spec,
          network: {
            mode: 'user',
            hostForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 70000, guestPort: 22 }],
          },
        },
      },
    ],
  ];
  for (const [name, input] of bad) assert.throws(() => buildQemuArgs(input), ValidationError, name);
});

test('args hash ignores how the process was started, not what the VM is', () => {
  const h = qemuArgsHash(buildQemuArgs(base));
  assert.equal(qemuArgsHash(buildQemuArgs({ ...base, incoming: true })), h);
  assert.equal(qemuArgsHash(buildQemuArgs({ ...base, paused: true, daemonize: false })), h);
  assert.notEqual(qemuArgsHash(buildQemuArgs({ ...base, spec: { ...spec, memoryMib: 512 } })), h);
  assert.match(h, /^[0-9a-f]{64}$/);
});
