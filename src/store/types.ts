// Table shapes (as Kysely sees them) and the records the repositories hand out. One schema for both
// dialects: JSON columns are TEXT in SQLite and JSONB in PostgreSQL but always travel as JSON text,
// timestamps are TEXT (ISO-8601 UTC) in SQLite and TIMESTAMPTZ in PostgreSQL but always read back as
// ISO-8601 strings (`2026-01-02T03:04:05.678Z`), 64-bit integers are read back as JS numbers.
import type { Generated } from 'kysely';

export const DialectKind = { Sqlite: 'sqlite', Postgres: 'postgresql' } as const;
export type DialectKind = (typeof DialectKind)[keyof typeof DialectKind];

/** ISO-8601 UTC timestamp with milliseconds, as produced by `Date.prototype.toISOString`. */
export type IsoTime = string;
/** A column that holds a JSON document (serialised with JSON.stringify). */
export type JsonText = string;

// ---------------------------------------------------------------- tables (snake_case, as stored)

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: IsoTime;
}

export interface NodesTable {
  id: string;
  name: string;
  address: string;
  status: string;
  driver: string;
  capacity: JsonText;
  labels: JsonText;
  created_at: IsoTime;
  updated_at: IsoTime;
  last_seen_at: IsoTime;
}

export interface VmsTable {
  id: string;
  name: string;
  spec: JsonText;
  labels: JsonText;
  node_id: string | null;
  desired_state: string;
  state: string;
  restart_policy: string;
  generation: number;
  error: string | null;
  created_at: IsoTime;
  updated_at: IsoTime;
}

export interface AllocationsTable {
  vm_id: string;
  node_id: string;
  cpus: number;
  memory_mib: number;
  disk_mib: number;
  created_at: IsoTime;
}

/** What is allocated on each node: kept by triggers on `allocations` (every insert, update and
 *  delete, cascades included), so reading a node's usage is one row, not a sum over its VMs. */
export interface NodeAllocatedTable {
  node_id: string;
  cpus: number;
  memory_mib: number;
  disk_mib: number;
  allocations: number;
}

export interface MigrationsTable {
  id: string;
  vm_id: string;
  kind: string;
  source_node: string;
  target_node: string;
  state: string;
  phase: string;
  bytes_sent: number;
  bytes_total: number | null;
  bytes_remaining: number | null;
  downtime_ms: number | null;
  total_ms: number | null;
  max_downtime_ms: number | null;
  progress: JsonText;
  error: string | null;
  created_at: IsoTime;
  updated_at: IsoTime;
  finished_at: IsoTime | null;
}

export interface EventsTable {
  id: Generated<number>;
  at: IsoTime;
  type: string;
  resource_type: string;
  resource_id: string;
  node_id: string | null;
  data: JsonText;
}

export interface BandwidthSamplesTable {
  id: Generated<number>;
  at: IsoTime;
  source_node: string;
  target_node: string;
  bytes_per_second: number;
  rtt_ms: number | null;
  loss_ratio: number | null;
  streams: number | null;
}

export interface IdempotencyKeysTable {
  scope: string;
  key: string;
  request_hash: string;
  resource_id: string | null;
  response: JsonText | null;
  created_at: IsoTime;
  expires_at: IsoTime;
}

export interface Database {
  schema_migrations: SchemaMigrationsTable;
  nodes: NodesTable;
  vms: VmsTable;
  allocations: AllocationsTable;
  node_allocated: NodeAllocatedTable;
  migrations: MigrationsTable;
  events: EventsTable;
  bandwidth_samples: BandwidthSamplesTable;
  idempotency_keys: IdempotencyKeysTable;
}

// ---------------------------------------------------------------- records (camelCase, parsed)

/** A JSON object as read back from a JSON column; callers validate it into their own types. */
export type JsonObject = Readonly<Record<string, unknown>>;
export type Labels = Readonly<Record<string, string>>;

/** One page of a listing; `nextCursor` is absent on the last page. */
export interface Page<T> {
  readonly items: readonly T[];
  readonly nextCursor?: string;
}

export interface NodeCapacity {
  readonly cpus: number;
  readonly memoryMib: number;
  readonly diskMib: number;
}

export interface NodeRecord {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  /** ready | down | draining | partitioned | cordoned … (owned by the cluster layer; stored as given). */
  readonly status: string;
  readonly driver: string;
  readonly capacity: NodeCapacity;
  readonly labels: Labels;
  readonly createdAt: IsoTime;
  readonly updatedAt: IsoTime;
  readonly lastSeenAt: IsoTime;
}

export interface NodeInput {
  readonly id: string;
  readonly name?: string;
  readonly address: string;
  readonly status: string;
  readonly driver: string;
  readonly capacity: NodeCapacity;
  readonly labels?: Labels;
}

export type RestartPolicy = 'never' | 'always';

export interface VmRecord {
  readonly id: string;
  readonly name: string;
  /** The VM's spec (cpus, memory, disks, kernel …) as the VM layer wrote it. */
  readonly spec: JsonObject;
  readonly labels: Labels;
  /** Node the VM is placed on; null before scheduling. */
  readonly node: string | null;
  readonly desiredState: string;
  /** Observed state (pending, scheduled, starting, running, stopping, stopped, migrating, failed, deleting). */
  readonly state: string;
  readonly restartPolicy: RestartPolicy;
  /** Starts at 1, incremented by every update; the token of optimistic concurrency. */
  readonly generation: number;
  /** Last failure reason, if any. */
  readonly error: string | null;
  readonly createdAt: IsoTime;
  readonly updatedAt: IsoTime;
}

export interface NewVm {
  /** Caller-chosen id (e.g. randomUUID()); must be unique. */
  readonly id: string;
  readonly name: string;
  readonly spec: object;
  readonly labels?: Labels;
  readonly node?: string | null;
  readonly desiredState: string;
  readonly state: string;
  readonly restartPolicy?: RestartPolicy;
  /** Generation of the new row (default 1); a create that records several state changes at once
   *  inserts the generation the row would have reached step by step. */
  readonly generation?: number;
}

/** Fields an update may change; absent fields are left as they are. */
export interface VmPatch {
  readonly name?: string;
  readonly spec?: object;
  readonly labels?: Labels;
  readonly node?: string | null;
  readonly desiredState?: string;
  readonly state?: string;
  readonly restartPolicy?: RestartPolicy;
  readonly error?: string | null;
}

export interface VmFilters {
  readonly state?: string | readonly string[];
  readonly desiredState?: string;
  readonly node?: string | null;
  readonly restartPolicy?: RestartPolicy;
  /** Every label given must match exactly. */
  readonly labels?: Labels;
  /** Name prefix. */
  readonly namePrefix?: string;
}

export interface ListOptions<F> {
  readonly filters?: F;
  /** 1..1000, default 100. */
  readonly limit?: number;
  /** Opaque cursor from a previous page's `nextCursor`. */
  readonly cursor?: string;
}

export interface AllocationRecord {
  readonly vmId: string;
  readonly nodeId: string;
  readonly cpus: number;
  readonly memoryMib: number;
  readonly diskMib: number;
  readonly createdAt: IsoTime;
}

export interface AllocationRequest {
  readonly vmId: string;
  readonly nodeId: string;
  readonly cpus: number;
  readonly memoryMib: number;
  readonly diskMib?: number;
}

export interface NodeUsage {
  readonly cpus: number;
  readonly memoryMib: number;
  readonly diskMib: number;
  readonly allocations: number;
}

/** Outcome of a reservation: expected, so a value the caller branches on, not an exception. */
export type ReserveResult =
  | { readonly ok: true; readonly allocation: AllocationRecord }
  | {
      readonly ok: false;
      /** `cpus`, `memory_mib` or `disk_mib`. */
      readonly what: 'cpus' | 'memory_mib' | 'disk_mib';
      readonly requested: number;
      readonly free: number;
    };

export type MigrationKind = 'live' | 'cold';

export interface MigrationRecord {
  readonly id: string;
  readonly vmId: string;
  readonly kind: MigrationKind;
  readonly sourceNode: string;
  readonly targetNode: string;
  /** pending | running | completed | failed | cancelled */
  readonly state: string;
  /** prepare | transfer | switchover | commit | rollback | done … */
  readonly phase: string;
  readonly bytesSent: number;
  readonly bytesTotal: number | null;
  readonly bytesRemaining: number | null;
  readonly downtimeMs: number | null;
  readonly totalMs: number | null;
  readonly maxDowntimeMs: number | null;
  /** Free-form progress figures (dirty rate, expected downtime, rate …). */
  readonly progress: JsonObject;
  readonly error: string | null;
  readonly createdAt: IsoTime;
  readonly updatedAt: IsoTime;
  readonly finishedAt: IsoTime | null;
}

export interface NewMigration {
  readonly id: string;
  readonly vmId: string;
  readonly kind: MigrationKind;
  readonly sourceNode: string;
  readonly targetNode: string;
  readonly state?: string;
  readonly phase?: string;
  readonly maxDowntimeMs?: number | null;
  readonly bytesTotal?: number | null;
}

export interface MigrationPatch {
  readonly state?: string;
  readonly phase?: string;
  readonly bytesSent?: number;
  readonly bytesTotal?: number | null;
  readonly bytesRemaining?: number | null;
  readonly downtimeMs?: number | null;
  readonly totalMs?: number | null;
  readonly progress?: object;
  readonly error?: string | null;
  readonly finishedAt?: IsoTime | null;
}

export interface MigrationFilters {
  readonly vmId?: string;
  readonly state?: string | readonly string[];
  readonly node?: string;
}

/** States in which a migration counts as active (at most one active migration per VM). */
export const ACTIVE_MIGRATION_STATES = ['pending', 'running'] as const;

export interface EventRecord {
  /** Monotonic sequence number: the audit log's order and the resume point of watchers. */
  readonly id: number;
  readonly at: IsoTime;
  /** Dotted type, e.g. `vm.state`, `vm.created`, `migration.phase`, `node.status`. */
  readonly type: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly nodeId: string | null;
  readonly data: JsonObject;
}

export interface NewEvent {
  readonly type: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly nodeId?: string | null;
  readonly data?: object;
  /** Defaults to the store's clock. */
  readonly at?: IsoTime;
}

export interface EventFilters {
  readonly type?: string;
  readonly resourceType?: string;
  readonly resourceId?: string;
  /** Only events with an id greater than this (resume point). */
  readonly afterId?: number;
}

export interface BandwidthSample {
  readonly at: IsoTime;
  readonly sourceNode: string;
  readonly targetNode: string;
  readonly bytesPerSecond: number;
  readonly rttMs?: number | null;
  readonly lossRatio?: number | null;
  readonly streams?: number | null;
}

export interface BandwidthSampleRecord extends BandwidthSample {
  readonly id: number;
  readonly rttMs: number | null;
  readonly lossRatio: number | null;
  readonly streams: number | null;
}

export interface BandwidthFilters {
  readonly sourceNode?: string;
  readonly targetNode?: string;
  /** Inclusive lower bound. */
  readonly since?: IsoTime;
}

/** Outcome of claiming an idempotency key. */
export type IdempotencyClaim =
  /** First use: go on, and call `complete` in the same transaction. */
  | { readonly status: 'claimed' }
  /** Seen before with the same request: replay the stored outcome. */
  | { readonly status: 'replay'; readonly resourceId: string | null; readonly response: unknown }
  /** Seen before with a different request body: reject (HTTP 422/409). */
  | { readonly status: 'mismatch' };
