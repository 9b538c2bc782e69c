// Filter: only nodes that are ready (not down, draining, partitioned or cordoned) take new VMs.
import type { FilterPlugin } from '../plugin.js';
import { NodeStatus } from '../types.js';

export const NODE_STATUS = 'node-status';

/** Rejects every node whose status is not `ready`. */
export const nodeStatusFilter: FilterPlugin = {
  name: NODE_STATUS,
  filter: (_req, node) => (node.status === NodeStatus.Ready ? undefined : `node is ${node.status}`),
};
