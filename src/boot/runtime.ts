// What the API needs to know about the running node: its boot report and its live health.
import type { NetworkMode } from '../config/schema.js';
import type { HealthStatus } from './component.js';
import type { BootReport, NodeState } from './orchestrator.js';

export interface ComponentHealthRow {
  readonly name: string;
  readonly status: HealthStatus;
  readonly detail: string;
}

export const ReadyStatus = {
  Starting: 'starting',
  Ready: 'ready',
  Degraded: 'degraded',
  Unavailable: 'unavailable',
  Stopping: 'stopping',
  /** Cut off from the region's etcd (cluster mode): serves reads, refuses writes (503). */
  Partitioned: 'partitioned',
} as const;
export type ReadyStatus = (typeof ReadyStatus)[keyof typeof ReadyStatus];

export interface Readiness {
  readonly status: ReadyStatus;
  readonly mode: NetworkMode;
  readonly components: readonly ComponentHealthRow[];
}

export interface NodeRuntime {
  readonly nodeId: string;
  state(): NodeState;
  mode(): NetworkMode;
  bootReport(): BootReport;
  /** How the configuration was loaded before the boot (null when built in-process without a loader). */
  readonly configLoad: { readonly file: string | null; readonly durationMs: number } | null;
  readiness(): Promise<Readiness>;
}

/** Whether the node is fenced from its region (set by the cluster component in etcd mode). */
export interface FenceProbe {
  isFenced(): boolean;
}

declare module './services.js' {
  interface Services {
    runtime?: NodeRuntime;
    fence?: FenceProbe;
  }
}

/** HTTP status of a readiness answer: 200 when ready or degraded, 503 otherwise. */
export function readinessHttpStatus(r: Readiness): 200 | 503 {
  return r.status === 'ready' || r.status === 'degraded' ? 200 : 503;
}

/**
 * Derives readiness from the node state and live component health: ready only when every
 * critical component is up; a critical component down makes the node unavailable (503);
 * optional components down or degraded make it degraded (200); a node fenced from its region is
 * partitioned (503).
 */
export function deriveReadiness(
  state: NodeState,
  mode: NetworkMode,
  rows: readonly ComponentHealthRow[],
  critical: ReadonlySet<string>,
  partitioned = false,
): Readiness {
  let status: ReadyStatus;
  if (state === 'idle' || state === 'starting') status = 'starting';
  else if (state === 'stopping' || state === 'stopped' || state === 'failed') status = 'stopping';
  else if (partitioned) status = 'partitioned';
  else if (rows.some((r) => critical.has(r.name) && r.status === 'down')) status = 'unavailable';
  else if (rows.some((r) => r.status !== 'up')) status = 'degraded';
  else status = 'ready';
  return { status, mode, components: rows };
}
