// novacron.v1.VmService (proto/novacron/v1/vm_service.proto): the VM lifecycle over gRPC, backed by
// the same VmService as REST, with the same validation and error mapping.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { parseLabelSelector, type VmView } from '../../vm/model.js';
import type { VmService } from '../../vm/service.js';
import { PROTO_LOADER_OPTIONS, PROTO_ROOT, toGrpcError, type GrpcServiceRegistration } from './server.js';

export const VM_PROTO = join(PROTO_ROOT, 'novacron/v1/vm_service.proto');

interface DiskMsg {
  path: string;
  base_image: string;
  format: string;
  read_only: boolean;
}
interface CreateMsg {
  name: string;
  cpus: number;
  memory_mib: number;
  kernel: string;
  initrd: string;
  cmdline: string;
  disks: DiskMsg[];
  labels: Record<string, string>;
  restart_policy: string;
  idempotency_key: string;
}

function toMsg(v: VmView): Record<string, unknown> {
  return {
    id: v.id,
    name: v.name,
    node: v.node ?? '',
    state: v.state,
    desired_state: v.desiredState,
    cpus: v.cpus,
    memory_mib: v.memoryMib,
    labels: v.labels,
    restart_policy: v.restartPolicy,
    generation: v.generation,
    error: v.error ?? '',
    driver: v.driver ?? '',
    pid: v.pid ?? 0,
    created_at: v.createdAt,
    updated_at: v.updatedAt,
  };
}

/** proto3 has no absent scalars: empty strings mean "not given". */
export function createBodyOf(m: CreateMsg): Record<string, unknown> {
  return {
    name: m.name,
    cpus: m.cpus,
    memoryMib: m.memory_mib,
    ...(m.kernel ? { kernel: m.kernel } : {}),
    ...(m.initrd ? { initrd: m.initrd } : {}),
    ...(m.cmdline ? { cmdline: m.cmdline } : {}),
    ...(m.disks.length
      ? {
          disks: m.disks.map((d) => ({
            ...(d.path ? { path: d.path } : { baseImage: d.base_image }),
            ...(d.format ? { format: d.format } : {}),
            ...(d.read_only ? { readOnly: true } : {}),
          })),
        }
      : {}),
    ...(Object.keys(m.labels).length ? { labels: m.labels } : {}),
    ...(m.restart_policy ? { restartPolicy: m.restart_policy } : {}),
  };
}

type Unary<Req> = (call: grpc.ServerUnaryCall<Req, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

function unary<Req>(fn: (req: Req) => Promise<unknown>): Unary<Req> {
  return (call, callback) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toGrpcError(err)),
    );
  };
}

export function vmServiceRegistration(vms: () => VmService): GrpcServiceRegistration {
  const packageDefinition = loadSync(VM_PROTO, PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(packageDefinition) as unknown as {
    novacron: { v1: { VmService: grpc.ServiceClientConstructor } };
  };
  return {
    definition: pkg.novacron.v1.VmService.service,
    packageDefinition,
    readMethods: ['ListVms', 'GetVm', 'GetVmConsole'],
    implementation: {
      CreateVm: unary(async (m: CreateMsg) => {
        const r = await vms().create(createBodyOf(m), m.idempotency_key || undefined);
        return toMsg(r.vm);
      }),
      ListVms: unary(
        async (m: {
          state: string;
          label_selector: string;
          name_prefix: string;
          limit: number;
          cursor: string;
        }) => {
          const sel = parseLabelSelector(m.label_selector);
          const page = await vms().list({
            ...(m.state ? { state: m.state } : {}),
            ...(sel ? { labels: sel } : {}),
            ...(m.name_prefix ? { namePrefix: m.name_prefix } : {}),
            ...(m.limit ? { limit: m.limit } : {}),
            ...(m.cursor ? { cursor: m.cursor } : {}),
          });
          return { items: page.items.map(toMsg), next_cursor: page.nextCursor ?? '' };
        },
      ),
      GetVm: unary(async (m: { id: string }) => toMsg(await vms().get(m.id))),
      PatchVmLabels: unary(
        async (m: { id: string; labels: Record<string, string>; remove_labels: string[] }) => {
          const labels: Record<string, string | null> = { ...m.labels };
          for (const k of m.remove_labels) labels[k] = null;
          return toMsg(await vms().patchLabels(m.id, { labels }));
        },
      ),
      StartVm: unary(async (m: { id: string }) => toMsg(await vms().start(m.id))),
      StopVm: unary(async (m: { id: string; force: boolean }) =>
        toMsg(await vms().stop(m.id, { force: m.force })),
      ),
      RestartVm: unary(async (m: { id: string }) => toMsg(await vms().restart(m.id))),
      DeleteVm: unary(async (m: { id: string }) => {
        await vms().delete(m.id);
        return {};
      }),
      GetVmConsole: unary(async (m: { id: string }) => {
        const c = await vms().console(m.id);
        return { vm_id: c.vmId, simulated: c.simulated, log: c.log, truncated: c.truncated };
      }),
    },
  };
}
