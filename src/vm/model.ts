// The VM model (pure): the create request and its validation, the spec document stored in the vms
// row (what to run plus the driver's persisted handle), and the API view of a VM record.
import { createHash } from 'node:crypto';
import { ValidationError } from '../errors.js';
import type { PersistedHandleState, VmDiskSpec, VmNetworkSpec } from './driver.js';
import { parsePersistedHandleState } from './driver.js';
import type { RestartPolicy, VmRecord } from '../store/types.js';
import { VM_STATES, type VmState } from './state-machine.js';

/** The body of `POST /api/v1/vms` (and gRPC CreateVm). */
export interface CreateVmRequest {
  readonly name: string;
  readonly cpus: number;
  readonly memoryMib: number;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly disks?: readonly VmDiskSpec[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly restartPolicy?: RestartPolicy;
}

/** What the `spec` column of a VM row holds. */
export interface StoredVmSpec {
  readonly cpus: number;
  readonly memoryMib: number;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly disks: readonly VmDiskSpec[];
  readonly network: VmNetworkSpec;
  /** The driver's handle of the running VM (null when nothing runs), handed to recover() at boot. */
  readonly handle: PersistedHandleState | null;
}

/** A VM as the API returns it. */
export interface VmView {
  readonly id: string;
  readonly name: string;
  readonly node: string | null;
  readonly state: string;
  readonly desiredState: string;
  readonly cpus: number;
  readonly memoryMib: number;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly disks: readonly VmDiskSpec[];
  readonly labels: Readonly<Record<string, string>>;
  readonly restartPolicy: RestartPolicy;
  readonly generation: number;
  readonly error: string | null;
  readonly driver: string | null;
  readonly pid: number | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export const VM_NAME_RE = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const LABEL_KEY_RE = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$/;
export const MAX_CPUS = 1024;
export const MIN_MEMORY_MIB = 16;

function fail(field: string, message: string): never {
  throw new ValidationError(`invalid request body: ${field} ${message}`, {
    key: field,
    details: [{ path: `/${field}`, message }],
  });
}

function optString(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') fail(field, 'must be a non-empty string');
  return v;
}

/** Validates labels (string → string, sane keys). */
export function validateLabels(v: unknown, field = 'labels'): Record<string, string> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, 'must be an object');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!LABEL_KEY_RE.test(k)) fail(`${field}.${k}`, 'is not a valid label key');
    if (typeof val !== 'string' || val.length > 256)
      fail(`${field}.${k}`, 'must be a string of at most 256 chars');
    out[k] = val;
  }
  return out;
}

function validateDisks(v: unknown): VmDiskSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail('disks', 'must be an array');
  return v.map((d: unknown, i): VmDiskSpec => {
    const f = `disks/${i}`;
    if (typeof d !== 'object' || d === null) fail(f, 'must be an object');
    const o = d as Record<string, unknown>;
    const format = o['format'];
    if (format !== undefined && format !== 'qcow2' && format !== 'raw')
      fail(`${f}/format`, 'must be qcow2 or raw');
    if (typeof o['path'] === 'string' && o['path'] !== '') {
      const ro = o['readOnly'];
      if (ro !== undefined && typeof ro !== 'boolean') fail(`${f}/readOnly`, 'must be a boolean');
      return {
        path: o['path'],
        ...(format === undefined ? {} : { format }),
        ...(ro === undefined ? {} : { readOnly: ro }),
      };
    }
    if (typeof o['baseImage'] === 'string' && o['baseImage'] !== '')
      return { baseImage: o['baseImage'], ...(format === undefined ? {} : { format }) };
    return fail(f, 'needs a path or a baseImage');
  });
}

/** Validates and normalises a create request (the REST schema checks shapes first; gRPC relies on this). */
export function validateCreateRequest(body: unknown): CreateVmRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) fail('body', 'must be an object');
  const b = body as Record<string, unknown>;
  const name = b['name'];
  if (typeof name !== 'string' || !VM_NAME_RE.test(name))
    fail(
      'name',
      'must be 1-63 lowercase letters, digits, ".", "_" or "-", starting and ending with a letter or digit',
    );
  const cpus = b['cpus'];
  if (typeof cpus !== 'number' || !Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS)
    fail('cpus', `must be an integer from 1 to ${MAX_CPUS}`);
  const memoryMib = b['memoryMib'];
  if (typeof memoryMib !== 'number' || !Number.isInteger(memoryMib) || memoryMib < MIN_MEMORY_MIB)
    fail('memoryMib', `must be an integer of at least ${MIN_MEMORY_MIB}`);
  const rp = b['restartPolicy'];
  if (rp !== undefined && rp !== 'never' && rp !== 'always') fail('restartPolicy', 'must be never or always');
  const kernel = optString(b['kernel'], 'kernel');
  const initrd = optString(b['initrd'], 'initrd');
  const cmdline = b['cmdline'];
  if (cmdline !== undefined && typeof cmdline !== 'string') fail('cmdline', 'must be a string');
  if (initrd !== undefined && kernel === undefined) fail('initrd', 'needs a kernel');
  const known = new Set([
    'name',
    'cpus',
    'memoryMib',
    'kernel',
    'initrd',
    'cmdline',
    'disks',
    'labels',
    'restartPolicy',
  ]);
  for (const k of Object.keys(b)) if (!known.has(k)) fail(k, 'is not a known field');
  return {
    name,
    cpus,
    memoryMib,
    ...(kernel === undefined ? {} : { kernel }),
    ...(initrd === undefined ? {} : { initrd }),
    ...(cmdline === undefined ? {} : { cmdline }),
    disks: validateDisks(b['disks']),
    labels: validateLabels(b['labels']),
    restartPolicy: rp ?? 'never',
  };
}

/** Stable hash of a normalised create request (for idempotency keys): key order does not matter. */
export function requestHash(req: CreateVmRequest): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canon)
      : typeof v === 'object' && v !== null
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canon((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canon(req)))
    .digest('hex');
}

export function specOf(req: CreateVmRequest): StoredVmSpec {
  return {
    cpus: req.cpus,
    memoryMib: req.memoryMib,
    ...(req.kernel === undefined ? {} : { kernel: req.kernel }),
    ...(req.initrd === undefined ? {} : { initrd: req.initrd }),
    ...(req.cmdline === undefined ? {} : { cmdline: req.cmdline }),
    disks: req.disks ?? [],
    network: { mode: 'none' },
    handle: null,
  };
}

/** Reads the spec column back (tolerant: a bad handle is dropped, so the VM is treated as not running). */
export function parseStoredSpec(spec: Readonly<Record<string, unknown>>): StoredVmSpec {
  const handle =
    spec['handle'] === null || spec['handle'] === undefined
      ? null
      : parsePersistedHandleState(spec['handle']);
  const str = (k: string) => (typeof spec[k] === 'string' ? { [k]: spec[k] } : {});
  return {
    cpus: Number(spec['cpus']),
    memoryMib: Number(spec['memoryMib']),
    ...str('kernel'),
    ...str('initrd'),
    ...str('cmdline'),
    disks: Array.isArray(spec['disks']) ? (spec['disks'] as VmDiskSpec[]) : [],
    network: (spec['network'] as VmNetworkSpec | undefined) ?? { mode: 'none' },
    handle: typeof handle === 'string' ? null : handle,
  };
}

export function isVmState(s: string): s is VmState {
  return (VM_STATES as readonly string[]).includes(s);
}

export function viewOf(r: VmRecord): VmView {
  const spec = parseStoredSpec(r.spec);
  return {
    id: r.id,
    name: r.name,
    node: r.node,
    state: r.state,
    desiredState: r.desiredState,
    cpus: spec.cpus,
    memoryMib: spec.memoryMib,
    ...(spec.kernel === undefined ? {} : { kernel: spec.kernel }),
    ...(spec.initrd === undefined ? {} : { initrd: spec.initrd }),
    ...(spec.cmdline === undefined ? {} : { cmdline: spec.cmdline }),
    disks: spec.disks,
    labels: r.labels,
    restartPolicy: r.restartPolicy,
    generation: r.generation,
    error: r.error,
    driver: spec.handle?.driver ?? null,
    pid: spec.handle && spec.handle.pid > 0 ? spec.handle.pid : null,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/** Parses a label selector `k=v,k2=v2` (exact matches). */
export function parseLabelSelector(s: string | undefined): Record<string, string> | undefined {
  if (s === undefined || s.trim() === '') return undefined;
  const out: Record<string, string> = {};
  for (const part of s.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) fail('labels', `selector "${part}" must be key=value`);
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}
