// Boot component "database": opens the store (SQLite or PostgreSQL), applies schema migrations,
// publishes `services.store`, and reports a live health check. Logic lives in src/store.
import type { BootContext, Component, ComponentHealth } from '../boot/component.js';
import { openStore, storeConfigFrom, type Store } from '../store/index.js';

export interface DatabaseComponentOptions {
  /** Clock for the timestamps the store writes (tests). */
  readonly now?: () => Date;
  /** E.g. `['data-dir']`, so the SQLite file's directory exists and is locked first. Default none. */
  readonly dependsOn?: readonly string[];
}

/** Margin left to the orchestrator's own timer, so that our message, not a bare timeout, wins. */
const TIMEOUT_MARGIN_MS = 250;

/**
 * Critical, phase core, no dependencies. PostgreSQL unreachable at boot: retried until
 * `initialization.timeout_seconds` (or the component timeout, if shorter) runs out, then the start
 * fails with `database unavailable: <host>:<port>: <cause>`. After boot, a lost server shows in
 * `health()` (a live `select 1`, down after at most 2 s without an answer) and the pool reconnects
 * by itself when it returns.
 */
export function databaseComponent(options: DatabaseComponentOptions = {}): Component {
  let store: Store | undefined;
  return {
    name: 'database',
    phase: 'core',
    dependsOn: options.dependsOn ?? [],
    critical: true,
    async start(ctx: BootContext): Promise<void> {
      const init = ctx.config.initialization;
      const windowMs =
        Math.min(init.timeout_seconds, init.component_timeout_seconds) * 1000 - TIMEOUT_MARGIN_MS;
      const config = storeConfigFrom(ctx.config);
      // Prefer the data dir the data-dir component resolved and locked, when it ran.
      const dataDir = ctx.services.dataDir ?? config.dataDir;
      const opened = await openStore(
        { ...config, dataDir },
        {
          logger: ctx.logger,
          signal: ctx.signal,
          connectTimeoutMs: Math.max(100, windowMs),
          ...(options.now === undefined ? {} : { now: options.now }),
        },
      );
      if (ctx.signal.aborted) {
        await opened.close();
        return;
      }
      store = opened;
      ctx.services.store = opened;
      ctx.logger.info(
        { dialect: opened.dialect, target: opened.target, schema: opened.schemaVersion },
        'database ready',
      );
    },
    async stop(ctx: BootContext): Promise<void> {
      const s = store;
      store = undefined;
      if (ctx.services.store === s) delete ctx.services.store;
      await s?.close();
    },
    health(): Promise<ComponentHealth> | ComponentHealth {
      return store === undefined ? { status: 'down', detail: 'database not started' } : store.health();
    },
  };
}
