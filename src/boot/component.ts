// The contract every boot component implements, and the context it is started with.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NovaCronConfig, NetworkMode } from '../config/schema.js';
import type { EventBus } from './events.js';
import type { Services } from './services.js';

/** The four boot phases of the seed's Init v2; a component's level must not precede its phase. */
export const BootPhase = { Pre: 'pre', Core: 'core', Service: 'service', Post: 'post' } as const;
export type BootPhase = (typeof BootPhase)[keyof typeof BootPhase];
export const BOOT_PHASE_ORDER: readonly BootPhase[] = ['pre', 'core', 'service', 'post'];

export const HealthStatus = { Up: 'up', Degraded: 'degraded', Down: 'down' } as const;
export type HealthStatus = (typeof HealthStatus)[keyof typeof HealthStatus];

export interface ComponentHealth {
  readonly status: HealthStatus;
  /** One line for operators: what backend is in use, why it is degraded … */
  readonly detail: string;
}

/** What a component is given when it starts. */
export interface BootContext {
  /** Effective, validated configuration (defaults < file < environment < flags). */
  readonly config: NovaCronConfig;
  /** Network mode in force: the configured one, or the detected one when `system.mode` is auto. */
  mode: NetworkMode;
  readonly logger: Logger;
  readonly metrics: Registry;
  readonly events: EventBus;
  /** Services started so far, filled in by components (see services.ts). */
  readonly services: Services;
  /** Aborted when the component's timeout passes or the node shuts down. */
  readonly signal: AbortSignal;
}

/**
 * A unit of boot. Contracts:
 * - `start` resolves when the component is usable; it must honour `ctx.signal` (abandon and clean up).
 * - `stop` is called in reverse boot order, only if `start` resolved; it must be idempotent.
 * - `health` is polled by /health/ready and must not throw (report `down` instead); it may be async.
 * - Components never call each other directly: they publish what they offer in `ctx.services`.
 */
export interface Component {
  readonly name: string;
  readonly phase: BootPhase;
  readonly dependsOn: readonly string[];
  /** A critical failure aborts the boot; an optional one is marked degraded and the boot goes on. */
  readonly critical: boolean;
  /** Start timeout; defaults to `initialization.component_timeout_seconds`. */
  readonly timeoutMs?: number;
  start(ctx: BootContext): Promise<void>;
  stop?(ctx: BootContext): Promise<void>;
  health?(): ComponentHealth | Promise<ComponentHealth>;
}
