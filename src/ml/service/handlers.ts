// The ML service's request handlers as pure functions of (models, request): validation, prediction, scoring.
import { predictNext } from '../models/bandwidth-model.js';
import { predictLifetime, LIFETIME_CLASSES, type VmCreationFeatures } from '../models/lifetime-model.js';
import { scoreNodesByLifetime } from '../models/lifetime-placement.js';
import type { PlacementNode } from '../fallback.js';
import type { ModelSet } from './model-registry.js';
import type {
  WireBandwidthRequest,
  WireBandwidthResponse,
  WireLifetimeResponse,
  WirePlacementRequest,
  WirePlacementResponse,
  WireVmFeatures,
} from '../proto.js';
import { ValidationError } from '../../errors.js';

/** Longest history a request may carry (the model reads the last 20). */
export const MAX_HISTORY = 4096;
export const MAX_NODES = 10000;
/** Most series one PredictBandwidthBatch call may carry. */
export const MAX_BATCH = 1024;

export function handlePredictBandwidthBatch(
  models: ModelSet,
  requests: readonly WireBandwidthRequest[],
): { responses: WireBandwidthResponse[] } {
  if (requests.length > MAX_BATCH)
    throw new ValidationError(`batch of ${requests.length} series; at most ${MAX_BATCH}`);
  return { responses: requests.map((r) => handlePredictBandwidth(models, r)) };
}

export function handlePredictBandwidth(models: ModelSet, req: WireBandwidthRequest): WireBandwidthResponse {
  const t0 = process.hrtime.bigint();
  const h = req.historical_bandwidth ?? [];
  if (h.length > MAX_HISTORY)
    throw new ValidationError(`historical_bandwidth has ${h.length} samples; at most ${MAX_HISTORY}`);
  for (const v of h) {
    if (!Number.isFinite(v) || v < 0)
      throw new ValidationError('historical_bandwidth must be finite and >= 0');
  }
  const file = models.bandwidth.file;
  const profile =
    req.profile && req.profile in file.params.profiles ? req.profile : file.params.defaultProfile;
  const p = predictNext(file.params.profiles[profile]!, h);
  return {
    predicted_bandwidth: p.predicted,
    confidence: p.confidence,
    prediction_time_us: Number((process.hrtime.bigint() - t0) / 1000n),
    lower_bound: p.lower,
    upper_bound: p.upper,
    model_version: `${file.version}/${profile}`,
  };
}

function vmFeatures(
  vm: WireVmFeatures | null | undefined,
  fallback: { cpu: number; memory: number },
): VmCreationFeatures {
  return {
    vcpus: vm && vm.vcpus > 0 ? vm.vcpus : fallback.cpu,
    memoryGb: vm && vm.memory_gb > 0 ? vm.memory_gb : fallback.memory,
    flavor: vm?.flavor ?? '',
    batchSize: vm && vm.batch_size > 0 ? vm.batch_size : 1,
    arrivalTimeS: vm?.arrival_time_s ?? 0,
  };
}

export function handleOptimizePlacement(models: ModelSet, req: WirePlacementRequest): WirePlacementResponse {
  const nodes = req.available_nodes ?? [];
  if (nodes.length > MAX_NODES)
    throw new ValidationError(`too many nodes (${nodes.length}); at most ${MAX_NODES}`);
  const need = { cpu: 0, memory: 0, network: 0 };
  for (const r of req.requirements ?? []) {
    need.cpu += r.cpu_required;
    need.memory += r.memory_required;
    need.network += r.network_required;
  }
  if (![need.cpu, need.memory, need.network].every((v) => Number.isFinite(v) && v >= 0)) {
    throw new ValidationError('requirements must be finite and >= 0');
  }
  const lifetime = predictLifetime(models.lifetime.file.params, vmFeatures(req.vm, need));
  const cand: PlacementNode[] = nodes.map((n) => ({
    nodeId: n.node_id,
    cpuAvailable: n.cpu_available,
    memoryAvailable: n.memory_available,
    networkBandwidth: n.network_bandwidth,
    currentLoad: n.current_load,
    cpuCapacity: n.cpu_capacity,
    memoryCapacity: n.memory_capacity,
    residentEndTimesS: n.resident_end_times_s ?? [],
  }));
  const scores = scoreNodesByLifetime(cand, need, req.now_s ?? 0, lifetime.expectedLifetimeS);
  const best = scores[0];
  const second = scores[1];
  const cls = LIFETIME_CLASSES[lifetime.cls] ?? 'unknown';
  return {
    selected_node_id: best?.nodeId ?? '',
    // Confidence: the class probability, discounted when the runner-up scores almost the same.
    confidence: best
      ? (lifetime.probabilities[lifetime.cls] ?? 0) *
        (second ? Math.min(1, 0.5 + (best.score - second.score) * 5) : 1)
      : 0,
    reasoning: best
      ? `predicted lifetime ${cls} (~${(lifetime.expectedLifetimeS / 3600).toFixed(1)} h); ${best.nodeId}: ${best.reason}`
      : `no node fits cpu ${need.cpu} memory ${need.memory}`,
    scores: scores.map((s) => ({ node_id: s.nodeId, score: s.score, reason: s.reason })),
    model_version: models.lifetime.file.version,
    predicted_lifetime_class: lifetime.cls,
    predicted_lifetime_s: lifetime.expectedLifetimeS,
  };
}

export function handlePredictLifetime(
  models: ModelSet,
  vms: readonly WireVmFeatures[],
): WireLifetimeResponse {
  if (vms.length > MAX_NODES) throw new ValidationError(`too many VMs (${vms.length}); at most ${MAX_NODES}`);
  return {
    predictions: vms.map((vm) => {
      const p = predictLifetime(models.lifetime.file.params, vmFeatures(vm, { cpu: 1, memory: 1 }));
      return {
        lifetime_class: p.cls,
        probabilities: [...p.probabilities],
        expected_lifetime_s: p.expectedLifetimeS,
      };
    }),
    model_version: models.lifetime.file.version,
  };
}
