// Adapter from the ML client to the scheduler's PlacementHintProvider: node scores from the TaskPlacer.
//
// When the service cannot answer (absent, slow, breaker open) the adapter rejects instead of
// passing on the client's best-fit fallback, so the scheduler ranks with its own local scorers.
import type { NodeSnapshot, PlacementHintProvider, PlacementRequest } from '../scheduler/index.js';
import type { MlClient } from './client.js';
import type { VmCreationFeatures } from './models/lifetime-model.js';
import type { PlacementNode } from './fallback.js';
import { UnavailableError } from '../errors.js';

/** Predicted end times (seconds) of the VMs on a node, e.g. from a tracker fed by PredictLifetime. */
export type ResidentEndTimes = (nodeId: string) => readonly number[] | undefined;

export interface MlHintProviderOptions {
  /** Current time in seconds (on the clock of the resident end times); Date.now()/1000 by default. */
  readonly nowS?: () => number;
  /** What is known about the VM at creation; by default its size, a batch of 1 and the current time. */
  readonly featuresOf?: (req: PlacementRequest) => VmCreationFeatures;
  readonly residentEndTimes?: ResidentEndTimes;
}

/** A node as the ML bridge sees it: free CPU and memory (GiB), capacities, resident end times. */
export function toPlacementNode(node: NodeSnapshot, ends?: readonly number[]): PlacementNode {
  return {
    nodeId: node.id,
    cpuAvailable: node.capacity.cpus - node.allocated.cpus,
    memoryAvailable: (node.capacity.memoryMib - node.allocated.memoryMib) / 1024,
    cpuCapacity: node.capacity.cpus,
    memoryCapacity: node.capacity.memoryMib / 1024,
    ...(ends === undefined ? {} : { residentEndTimesS: ends }),
  };
}

/** Creates the scheduler's hint provider backed by the ML client's OptimizePlacement. */
export function createMlHintProvider(
  client: MlClient,
  options: MlHintProviderOptions = {},
): PlacementHintProvider {
  const now = options.nowS ?? (() => Date.now() / 1000);
  return {
    async scoreNodes(request, nodes) {
      const t = now();
      const features: VmCreationFeatures = options.featuresOf?.(request) ?? {
        vcpus: request.resources.cpus,
        memoryGb: request.resources.memoryMib / 1024,
        batchSize: 1,
        arrivalTimeS: t,
      };
      const answer = await client.optimizePlacement({
        taskId: request.id,
        nodes: nodes.map((n) => toPlacementNode(n, options.residentEndTimes?.(n.id))),
        need: { cpu: request.resources.cpus, memory: request.resources.memoryMib / 1024 },
        vm: features,
        nowS: t,
      });
      if (answer.source !== 'model') {
        throw new UnavailableError('ml service did not answer; the scheduler ranks with its local scorers');
      }
      return new Map(answer.scores.map((s) => [s.nodeId, Math.max(0, Math.min(100, s.score * 100))]));
    },
  };
}
