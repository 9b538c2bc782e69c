// The ML bench's request shapes: a 20-sample bandwidth history and a placement problem.
import type { PlacementNode } from '../../src/ml/fallback.js';

/** A history of 20 samples and a placement problem of `nodes` nodes with 10 residents each. */
export function workload(nodes = 100) {
  const history = Array.from({ length: 20 }, (_, i) => 50 + 10 * Math.sin(i / 3) + (i % 4));
  const list: PlacementNode[] = Array.from({ length: nodes }, (_, i) => ({
    nodeId: `node-${i}`,
    cpuAvailable: 4 + (i % 40),
    memoryAvailable: 16 + (i % 300),
    cpuCapacity: 48,
    memoryCapacity: 384,
    residentEndTimesS: Array.from({ length: 10 }, (_, k) => 1000 + ((i * 7919 + k * 104729) % 200000)),
  }));
  const vm = { vcpus: 2, memoryGb: 4, flavor: 'g', batchSize: 3, arrivalTimeS: 1000 };
  return { history, nodes: list, vm, need: { cpu: 2, memory: 4 } };
}
