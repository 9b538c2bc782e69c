// Loads the novacron.ml.v1 contract at run time (no generated code) and declares its wire shapes.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/** Path of ml_service.proto in the repository (same relative place from src/ml and dist/ml). */
export const ML_PROTO_PATH = fileURLToPath(
  new URL('../../proto/novacron/ml/v1/ml_service.proto', import.meta.url),
);

export const BANDWIDTH_SERVICE = 'novacron.ml.v1.BandwidthPredictor';
export const PLACER_SERVICE = 'novacron.ml.v1.TaskPlacer';

// Wire shapes as proto-loader gives them with keepCase (field names exactly as in the .proto).

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

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  oneofs: true,
};

export interface MlServiceDefinitions {
  readonly bandwidth: grpc.ServiceDefinition;
  readonly placer: grpc.ServiceDefinition;
  readonly BandwidthClient: grpc.ServiceClientConstructor;
  readonly PlacerClient: grpc.ServiceClientConstructor;
}

let cached: MlServiceDefinitions | undefined;

/** Parses the .proto once per process and returns the two services. */
export function loadMlServices(): MlServiceDefinitions {
  if (cached) return cached;
  const def = protoLoader.loadSync(ML_PROTO_PATH, PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    novacron: {
      ml: {
        v1: { BandwidthPredictor: grpc.ServiceClientConstructor; TaskPlacer: grpc.ServiceClientConstructor };
      };
    };
  };
  const v1 = pkg.novacron.ml.v1;
  cached = {
    bandwidth: v1.BandwidthPredictor.service,
    placer: v1.TaskPlacer.service,
    BandwidthClient: v1.BandwidthPredictor,
    PlacerClient: v1.TaskPlacer,
  };
  return cached;
}
