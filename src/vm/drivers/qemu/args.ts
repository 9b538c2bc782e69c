// Pure builder of the qemu-system-x86_64 argv for a VM, plus the VM directory layout. No I/O here.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ValidationError } from '../../../errors.js';
import type { VmNetworkSpec, VmSpec } from '../../driver.js';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH = 107;

export type QemuAccel = 'kvm' | 'tcg';

/** Files of one VM inside `<data_dir>/vms/<id>/`. */
export interface QemuVmLayout {
  readonly vmDir: string;
  readonly qmpSocket: string;
  readonly serialLog: string;
  readonly pidFile: string;
  /** The persisted handle state, written at start so a VM can be adopted even without its database row. */
  readonly handleFile: string;
}

export function qemuVmLayout(vmDir: string): QemuVmLayout {
  return {
    vmDir,
    qmpSocket: join(vmDir, 'qmp.sock'),
    serialLog: join(vmDir, 'serial.log'),
    pidFile: join(vmDir, 'qemu.pid'),
    handleFile: join(vmDir, 'handle.json'),
  };
}

/** Where the qcow2 overlay of disk `index` lives. */
export function overlayPath(vmDir: string, index: number): string {
  return join(vmDir, `disk${index}.qcow2`);
}

/** A disk after overlays were made: the file QEMU opens. */
export interface ResolvedDisk {
  readonly file: string;
  readonly format: 'qcow2' | 'raw';
  readonly readOnly: boolean;
}

export interface QemuArgsInput {
  readonly spec: VmSpec;
  readonly layout: QemuVmLayout;
  readonly accel: QemuAccel;
  readonly disks: readonly ResolvedDisk[];
  /** `-incoming defer`: wait for migrate-incoming instead of booting. */
  readonly incoming?: boolean;
  /** `-S`: vCPUs stay stopped until `cont`. */
  readonly paused?: boolean;
  /** Machine type; both ends of a migration must agree. Default `pc`. */
  readonly machine?: string;
  /** Fork into the background once set up (the driver always does; tests of argv may not). Default true. */
  readonly daemonize?: boolean;
}

/**
 * QEMU option values are comma-separated key=value lists; a literal comma is written as two.
 * @example escapeOptValue('a,b') // 'a,,b'
 */
export function escapeOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

function requireInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ValidationError(`${name} must be an integer from ${min} to ${max} (got ${value})`, {
      key: name,
    });
}

function networkArgs(network: VmNetworkSpec): string[] {
  switch (network.mode) {
    case 'none':
      return ['-nic', 'none'];
    case 'user': {
      const fwds = (network.hostForwards ?? []).map((f) => {
        requireInt('network.hostForwards.hostPort', f.hostPort, 1, 65535);
        requireInt('network.hostForwards.guestPort', f.guestPort, 1, 65535);
        return `,hostfwd=${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`;
      });
      return ['-nic', `user,model=virtio-net-pci${fwds.join('')}`];
    }
  }
}

/**
 * The argv (without the binary) that starts `input.spec` under QEMU: QMP on a unix socket, the serial
 * console into a file, no display, no default devices, a pid file, daemonized.
 * Throws ValidationError on values QEMU would reject or misread.
 */
export function buildQemuArgs(input: QemuArgsInput): string[] {
  const { spec, layout } = input;
  requireInt('cpus', spec.cpus, 1, 255);
  requireInt('memoryMib', spec.memoryMib, 16, 4 * 1024 * 1024);
  if (spec.name.length === 0) throw new ValidationError('name must not be empty', { key: 'name' });
  if (Buffer.byteLength(layout.qmpSocket) > MAX_UNIX_SOCKET_PATH)
    throw new ValidationError(
      `QMP socket path is ${Buffer.byteLength(layout.qmpSocket)} bytes, over the ${MAX_UNIX_SOCKET_PATH}-byte unix socket limit: ${layout.qmpSocket}`,
      { key: 'system.data_dir', hint: 'use a shorter data directory path' },
    );
  if (spec.initrd !== undefined && spec.kernel === undefined)
    throw new ValidationError('initrd given without a kernel', { key: 'initrd' });
  if (spec.cmdline !== undefined && spec.kernel === undefined)
    throw new ValidationError('cmdline given without a kernel', { key: 'cmdline' });

  const args = [
    '-name',
    `guest=${escapeOptValue(spec.name)},debug-threads=on`,
    '-machine',
    `${escapeOptValue(input.machine ?? 'pc')},accel=${input.accel}`,
    '-cpu',
    input.accel === 'kvm' ? 'host' : 'qemu64',
    '-smp',
    String(spec.cpus),
    '-m',
    String(spec.memoryMib),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-chardev',
    `socket,id=qmp,path=${escapeOptValue(layout.qmpSocket)},server=on,wait=off`,
    '-mon',
    'chardev=qmp,mode=control',
    '-chardev',
    `file,id=serial0,path=${escapeOptValue(layout.serialLog)}`,
    '-serial',
    'chardev:serial0',
    '-pidfile',
    layout.pidFile,
  ];
  if (spec.kernel !== undefined) args.push('-kernel', spec.kernel);
  if (spec.initrd !== undefined) args.push('-initrd', spec.initrd);
  if (spec.cmdline !== undefined) args.push('-append', spec.cmdline);
  input.disks.forEach((d, i) => {
    args.push(
      '-drive',
      `id=disk${i},file=${escapeOptValue(d.file)},format=${d.format},if=virtio,cache=writeback${d.readOnly ? ',readonly=on' : ''}`,
    );
  });
  args.push(...networkArgs(spec.network));
  if (input.paused) args.push('-S');
  if (input.incoming) args.push('-incoming', 'defer');
  if (input.daemonize ?? true) args.push('-daemonize');
  return args;
}

/** Flags that say how a process was started, not what the VM is: left out of the configuration hash. */
const RUNTIME_FLAGS = new Set(['-S', '-daemonize']);

/**
 * sha256 of the VM's configuration as argv, ignoring `-S`, `-daemonize` and `-incoming defer`, so a
 * migration destination started with `-incoming` hashes like its source.
 */
export function qemuArgsHash(args: readonly string[]): string {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (RUNTIME_FLAGS.has(a)) continue;
    if (a === '-incoming') {
      i++;
      continue;
    }
    kept.push(a);
  }
  return createHash('sha256').update(kept.join('\0')).digest('hex');
}
