// The novacron.ml.v1 contract for grpc-js: wire shapes and service definitions whose methods use the
// hand-written codecs of codec.ts (no proto-loader reflection per call). codec.test.ts keeps the
// codecs byte-compatible with proto/novacron/ml/v1/ml_service.proto as protobufjs reads it.
import * as grpc from '@grpc/grpc-js';
import { fileURLToPath } from 'node:url';
import * as c from './codec.js';

/** Path of ml_service.proto in the repository (same relative place from src/ml and dist/ml). */
export const ML_PROTO_PATH = fileURLToPath(
  new URL('../../proto/novacron/ml/v1/ml_service.proto', import.meta.url),
);

export const BANDWIDTH_SERVICE = 'novacron.ml.v1.BandwidthPredictor';
export const PLACER_SERVICE = 'novacron.ml.v1.TaskPlacer';

// Wire shapes (field names exactly as in the .proto), as codec.ts decodes them: every field present.

export interface WireBandwidthRequest {
  vm_id: string;
  timestamp: number;
  historical_bandwidth: number[];
  network_type: string;
  profile: string;
}
export interface WireBandwidthResponse {
  predicted_bandwidth: number;
  confidence: number;
  prediction_time_us: number;
  lower_bound: number;
  upper_bound: number;
  model_version: string;
}
export interface WireNodeInfo {
  node_id: string;
  cpu_available: number;
  memory_available: number;
  network_bandwidth: number;
  current_load: number;
  cpu_capacity: number;
  memory_capacity: number;
  resident_end_times_s: number[];
}
export interface WireResourceRequirement {
  cpu_required: number;
  memory_required: number;
  network_required: number;
}
export interface WireVmFeatures {
  vcpus: number;
  memory_gb: number;
  flavor: string;
  batch_size: number;
  arrival_time_s: number;
}
export interface WirePlacementRequest {
  task_id: string;
  available_nodes: WireNodeInfo[];
  requirements: WireResourceRequirement[];
  vm: WireVmFeatures | null;
  now_s: number;
}
export interface WireNodeScore {
  node_id: string;
  score: number;
  reason: string;
}
export interface WirePlacementResponse {
  selected_node_id: string;
  confidence: number;
  reasoning: string;
  scores: WireNodeScore[];
  model_version: string;
  predicted_lifetime_class: number;
  predicted_lifetime_s: number;
}
export interface WireLifetimePrediction {
  lifetime_class: number;
  probabilities: number[];
  expected_lifetime_s: number;
}
export interface WireLifetimeResponse {
  predictions: WireLifetimePrediction[];
  model_version: string;
}
export interface WireModelVersion {
  kind: string;
  version: string;
  file: string;
}
export interface WireHealthResponse {
  healthy: boolean;
  version: string;
  models: WireModelVersion[];
}

export interface MlServiceDefinitions {
  readonly bandwidth: grpc.ServiceDefinition;
  readonly placer: grpc.ServiceDefinition;
  readonly BandwidthClient: grpc.ServiceClientConstructor;
  readonly PlacerClient: grpc.ServiceClientConstructor;
}

/** One unary method of `service`, with its codecs (grpc-js types both directions alike: `unknown`). */
function unary<ReqIn, ReqOut, ResIn, ResOut>(
  service: string,
  name: string,
  req: c.Codec<ReqIn, ReqOut>,
  res: c.Codec<ResIn, ResOut>,
): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${service}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: req.serialize as (v: unknown) => Buffer,
    requestDeserialize: req.deserialize,
    responseSerialize: res.serialize as (v: unknown) => Buffer,
    responseDeserialize: res.deserialize,
    originalName: name[0]!.toLowerCase() + name.slice(1),
  };
}

let cached: MlServiceDefinitions | undefined;

/** Builds the two services once per process. */
export function loadMlServices(): MlServiceDefinitions {
  if (cached) return cached;
  const bwReq = c.codec(c.encodeBandwidthRequest, c.decodeBandwidthRequest);
  const bwRes = c.codec(c.encodeBandwidthResponse, c.decodeBandwidthResponse);
  const batchReq = c.codec(c.encodeBandwidthBatchRequest, c.decodeBandwidthBatchRequest);
  const batchRes = c.codec(c.encodeBandwidthBatchResponse, c.decodeBandwidthBatchResponse);
  const plReq = c.codec(c.encodePlacementRequest, c.decodePlacementRequest);
  const plRes = c.codec(c.encodePlacementResponse, c.decodePlacementResponse);
  const ltReq = c.codec(c.encodeLifetimeRequest, c.decodeLifetimeRequest);
  const ltRes = c.codec(c.encodeLifetimeResponse, c.decodeLifetimeResponse);
  const hReq = c.codec(c.encodeHealthRequest, c.decodeHealthRequest);
  const hRes = c.codec(c.encodeHealthResponse, c.decodeHealthResponse);
  const bandwidth: grpc.ServiceDefinition = {
    PredictBandwidth: unary(BANDWIDTH_SERVICE, 'PredictBandwidth', bwReq, bwRes),
    PredictBandwidthBatch: unary(BANDWIDTH_SERVICE, 'PredictBandwidthBatch', batchReq, batchRes),
    HealthCheck: unary(BANDWIDTH_SERVICE, 'HealthCheck', hReq, hRes),
  };
  const placer: grpc.ServiceDefinition = {
    OptimizePlacement: unary(PLACER_SERVICE, 'OptimizePlacement', plReq, plRes),
    PredictLifetime: unary(PLACER_SERVICE, 'PredictLifetime', ltReq, ltRes),
    HealthCheck: unary(PLACER_SERVICE, 'HealthCheck', hReq, hRes),
  };
  cached = {
    bandwidth,
    placer,
    BandwidthClient: grpc.makeGenericClientConstructor(bandwidth, 'BandwidthPredictor'),
    PlacerClient: grpc.makeGenericClientConstructor(placer, 'TaskPlacer'),
  };
  return cached;
}
