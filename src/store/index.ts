// Public surface of the store: open it, use its repositories and transactions. See docs/store.md.
import type { NovaCronConfig } from '../config/schema.js';
import type { StoreConfig } from './dialect.js';
import type { Store } from './store.js';

export { openStore, Store } from './store.js';
export type { OpenStoreOptions, StoreTx } from './store.js';
export type { StoreConfig } from './dialect.js';
export { classifyDbError } from './dialect.js';
export { SCHEMA_MIGRATIONS, runSchemaMigrations } from './schema-migrations.js';
export type { MigrationResult, SchemaMigration } from './schema-migrations.js';
export { VmRepository } from './repositories/vms.js';
export { NodeRepository } from './repositories/nodes.js';
export { AllocationRepository, firstShortfall } from './repositories/allocations.js';
export { MigrationRepository } from './repositories/migrations.js';
export { EventRepository } from './repositories/events.js';
export { BandwidthRepository } from './repositories/bandwidth.js';
export { IdempotencyRepository, DEFAULT_IDEMPOTENCY_TTL_SECONDS } from './repositories/idempotency.js';
export * from './types.js';

declare module '../boot/services.js' {
  interface Services {
    store?: Store;
  }
}

/** The store's settings from the typed configuration. */
export function storeConfigFrom(config: Pick<NovaCronConfig, 'database' | 'system'>): StoreConfig {
  const d = config.database;
  return {
    type: d.type,
    path: d.path,
    dataDir: config.system.data_dir,
    host: d.host,
    port: d.port,
    database: d.database,
    user: d.user,
    password: d.password,
    poolSize: d.pool_size,
    ssl: d.ssl,
  };
}
