// The audit event of a VM state change: one `vm.state` row in the events table, written in the same
// transaction as the change itself (VM service, cluster leader, migration manager).
import type { StoreTx } from '../store/index.js';
import type { VmRecord } from '../store/types.js';

export async function appendVmStateEvent(
  tx: Pick<StoreTx, 'events'>,
  vm: VmRecord,
  from: string,
  extra: Record<string, unknown> = {},
  nodeId: string | null = vm.node,
): Promise<void> {
  await tx.events.append({
    type: 'vm.state',
    resourceType: 'vm',
    resourceId: vm.id,
    nodeId,
    data: {
      name: vm.name,
      from,
      to: vm.state,
      generation: vm.generation,
      ...(vm.error ? { error: vm.error } : {}),
      ...extra,
    },
  });
}
