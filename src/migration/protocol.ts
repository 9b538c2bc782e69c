// The node-to-node migration contract in plain TypeScript: what the source node asks of the
// destination node (served over gRPC by src/api/grpc/migration-service.ts). Pure types.
import type { RestartPolicy } from '../store/types.js';

export type MigrationKindName = 'live' | 'cold';

export interface PrepareRequest {
  readonly migrationId: string;
  readonly vmId: string;
  readonly vmName: string;
  /** The VM's stored spec as JSON (handle excluded). */
  readonly specJson: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly restartPolicy: RestartPolicy;
  readonly sourceNode: string;
  readonly kind: MigrationKindName;
  readonly maxDowntimeMs: number;
}

export interface PrepareResult {
  /** system.node_id of the destination. */
  readonly nodeId: string;
  /** Port of the destination's DWCP receiver. */
  readonly dwcpPort: number;
}

/** What Abort did: `committed` means the destination already runs the VM (the source must quit). */
export interface AbortOutcome {
  readonly outcome: 'aborted' | 'committed' | 'unknown';
  readonly resumedAtUs?: number;
}

export interface PeerMigrationView {
  readonly migrationId: string;
  readonly vmId: string;
  readonly state: string;
  readonly phase: string;
  readonly error: string | null;
}

/** The destination role of a node's migration manager (what the gRPC service calls). */
export interface DestinationHost {
  prepare(req: PrepareRequest): Promise<PrepareResult>;
  /** Resolves when the destination QEMU loaded the state; aborts the migration if `signal` fires first. */
  awaitLoaded(migrationId: string, signal: AbortSignal): Promise<void>;
  /** Records the commit, then starts the vCPUs; returns the RESUME time (µs since the epoch). */
  resume(migrationId: string): Promise<number>;
  abort(migrationId: string, reason: string): Promise<AbortOutcome>;
  get(migrationId: string): Promise<PeerMigrationView>;
  /** Cold migration: the disks arrived; records the VM here (stopped). */
  commitCold(migrationId: string, disks: readonly ColdDisk[]): Promise<void>;
}

/** A disk of a cold migration, as sent into the destination's disk store. */
export interface ColdDisk {
  readonly name: string;
  readonly format: 'qcow2' | 'raw';
  readonly readOnly: boolean;
}
