// Versioned schema migrations and their runner. The runner applies every pending migration in ONE
// transaction that first takes a lock — pg_advisory_xact_lock on PostgreSQL, BEGIN IMMEDIATE on
// SQLite — so that two nodes booting against the same database at once apply each version exactly
// once (the second waits, then finds nothing to do). Migrations are append-only: never edit one that
// has shipped, add the next version.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import { NovaCronError, ErrorCode } from '../errors.js';
import type { Database, DialectKind } from './types.js';

/** Column types per dialect, so one migration text serves both. */
export interface SqlTypes {
  readonly json: string;
  readonly timestamp: string;
  readonly bigint: string;
  readonly double: string;
}

export function sqlTypes(kind: DialectKind): SqlTypes {
  return kind === 'postgresql'
    ? { json: 'jsonb', timestamp: 'timestamptz', bigint: 'bigint', double: 'double precision' }
    : { json: 'text', timestamp: 'text', bigint: 'integer', double: 'real' };
}

export interface SchemaMigration {
  readonly version: number;
  readonly name: string;
  up(db: Transaction<Database>, kind: DialectKind): Promise<void>;
}

/** Kysely's schema builder wants a data-type expression; raw types let one text serve both dialects. */
const t = (type: string) => sql.raw(type);

export const SCHEMA_MIGRATIONS: readonly SchemaMigration[] = [
  {
    version: 1,
    name: 'initial: nodes, vms, allocations, migrations, events, bandwidth_samples, idempotency_keys',
    async up(db, kind) {
      const T = sqlTypes(kind);
      const s = db.schema;
      await s
        .createTable('nodes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('driver', 'text', (c) => c.notNull())
        .addColumn('capacity', t(T.json), (c) => c.notNull())
        .addColumn('labels', t(T.json), (c) => c.notNull())
        .addColumn('created_at', t(T.timestamp), (c) => c.notNull())
        .addColumn('updated_at', t(T.timestamp), (c) => c.notNull())
        .addColumn('last_seen_at', t(T.timestamp), (c) => c.notNull())
        .execute();

      await s
        .createTable('vms')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('spec', t(T.json), (c) => c.notNull())
        .addColumn('labels', t(T.json), (c) => c.notNull())
        // No foreign key to nodes: in a region the node rows come and go with membership, and a VM
        // record must outlive the row of a node that died (the HA path reads it to place it again).
        .addColumn('node_id', 'text')
        .addColumn('desired_state', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('restart_policy', 'text', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('created_at', t(T.timestamp), (c) => c.notNull())
        .addColumn('updated_at', t(T.timestamp), (c) => c.notNull())
        .execute();
      await s.createIndex('vms_node_idx').on('vms').column('node_id').execute();
      await s.createIndex('vms_state_idx').on('vms').column('state').execute();
      await s.createIndex('vms_created_idx').on('vms').columns(['created_at', 'id']).execute();

      await s
        .createTable('allocations')
        .addColumn('vm_id', 'text', (c) => c.notNull().references('vms.id').onDelete('cascade'))
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('cpus', 'integer', (c) => c.notNull())
        .addColumn('memory_mib', t(T.bigint), (c) => c.notNull())
        .addColumn('disk_mib', t(T.bigint), (c) => c.notNull())
        .addColumn('created_at', t(T.timestamp), (c) => c.notNull())
        .addPrimaryKeyConstraint('allocations_pk', ['vm_id', 'node_id'])
        .execute();
      await s.createIndex('allocations_node_idx').on('allocations').column('node_id').execute();

      await s
        .createTable('migrations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('vm_id', 'text', (c) => c.notNull().references('vms.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('source_node', 'text', (c) => c.notNull())
        .addColumn('target_node', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('phase', 'text', (c) => c.notNull())
        .addColumn('bytes_sent', t(T.bigint), (c) => c.notNull())
        .addColumn('bytes_total', t(T.bigint))
        .addColumn('bytes_remaining', t(T.bigint))
        .addColumn('downtime_ms', t(T.bigint))
        .addColumn('total_ms', t(T.bigint))
        .addColumn('max_downtime_ms', t(T.bigint))
        .addColumn('progress', t(T.json), (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('created_at', t(T.timestamp), (c) => c.notNull())
        .addColumn('updated_at', t(T.timestamp), (c) => c.notNull())
        .addColumn('finished_at', t(T.timestamp))
        .execute();
      await s.createIndex('migrations_vm_idx').on('migrations').column('vm_id').execute();
      // At most one active migration per VM, enforced by the database (partial unique index).
      await s
        .createIndex('migrations_one_active_per_vm')
        .on('migrations')
        .column('vm_id')
        .unique()
        .where(sql.ref('state'), 'in', ['pending', 'running'])
        .execute();

      await s
        .createTable('events')
        .addColumn('id', kind === 'postgresql' ? 'bigserial' : 'integer', (c) =>
          kind === 'postgresql' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('at', t(T.timestamp), (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('resource_type', 'text', (c) => c.notNull())
        .addColumn('resource_id', 'text', (c) => c.notNull())
        .addColumn('node_id', 'text')
        .addColumn('data', t(T.json), (c) => c.notNull())
        .execute();
      await s
        .createIndex('events_resource_idx')
        .on('events')
        .columns(['resource_type', 'resource_id', 'id'])
        .execute();
      await s.createIndex('events_type_idx').on('events').columns(['type', 'id']).execute();

      await s
        .createTable('bandwidth_samples')
        .addColumn('id', kind === 'postgresql' ? 'bigserial' : 'integer', (c) =>
          kind === 'postgresql' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('at', t(T.timestamp), (c) => c.notNull())
        .addColumn('source_node', 'text', (c) => c.notNull())
        .addColumn('target_node', 'text', (c) => c.notNull())
        .addColumn('bytes_per_second', t(T.double), (c) => c.notNull())
        .addColumn('rtt_ms', t(T.double))
        .addColumn('loss_ratio', t(T.double))
        .addColumn('streams', 'integer')
        .execute();
      await s
        .createIndex('bandwidth_link_idx')
        .on('bandwidth_samples')
        .columns(['source_node', 'target_node', 'at'])
        .execute();
      await s.createIndex('bandwidth_at_idx').on('bandwidth_samples').column('at').execute();

      await s
        .createTable('idempotency_keys')
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('request_hash', 'text', (c) => c.notNull())
        .addColumn('resource_id', 'text')
        .addColumn('response', t(T.json))
        .addColumn('created_at', t(T.timestamp), (c) => c.notNull())
        .addColumn('expires_at', t(T.timestamp), (c) => c.notNull())
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['scope', 'key'])
        .execute();
      await s.createIndex('idempotency_expires_idx').on('idempotency_keys').column('expires_at').execute();
    },
  },
  {
    version: 2,
    name: 'covering index for per-node allocation sums',
    async up(db) {
      // reserve() sums a node's allocations on every create: with the summed columns in the index,
      // that is an index-only scan instead of one table lookup per allocation.
      await db.schema.dropIndex('allocations_node_idx').execute();
      await db.schema
        .createIndex('allocations_node_usage_idx')
        .on('allocations')
        .columns(['node_id', 'cpus', 'memory_mib', 'disk_mib'])
        .execute();
    },
  },
  {
    version: 3,
    name: 'node_allocated: per-node allocation totals kept by triggers on allocations',
    async up(db, kind) {
      // reserve() read a node's usage as a sum over its allocations on every create: O(VMs on the
      // node) per create. The totals now live in one row per node, kept by triggers (so every path
      // that writes allocations, cascading deletes of VM rows included, keeps them exact).
      await db.schema
        .createTable('node_allocated')
        .addColumn('node_id', 'text', (c) => c.primaryKey())
        .addColumn('cpus', t(sqlTypes(kind).bigint), (c) => c.notNull())
        .addColumn('memory_mib', t(sqlTypes(kind).bigint), (c) => c.notNull())
        .addColumn('disk_mib', t(sqlTypes(kind).bigint), (c) => c.notNull())
        .addColumn('allocations', t(sqlTypes(kind).bigint), (c) => c.notNull())
        .execute();
      await sql`insert into node_allocated (node_id, cpus, memory_mib, disk_mib, allocations)
        select node_id, sum(cpus), sum(memory_mib), sum(disk_mib), count(*) from allocations group by node_id`.execute(
        db,
      );
      for (const statement of nodeAllocatedTriggers(kind)) await sql.raw(statement).execute(db);
    },
  },
];

/** The triggers that keep node_allocated equal to the per-node sums of allocations. */
export function nodeAllocatedTriggers(kind: DialectKind): readonly string[] {
  const add = (r: string) =>
    `insert into node_allocated as n (node_id, cpus, memory_mib, disk_mib, allocations)
       values (${r}.node_id, ${r}.cpus, ${r}.memory_mib, ${r}.disk_mib, 1)
       on conflict (node_id) do update set cpus = n.cpus + excluded.cpus,
         memory_mib = n.memory_mib + excluded.memory_mib, disk_mib = n.disk_mib + excluded.disk_mib,
         allocations = n.allocations + 1`;
  const sub = (r: string) =>
    `update node_allocated set cpus = cpus - ${r}.cpus, memory_mib = memory_mib - ${r}.memory_mib,
       disk_mib = disk_mib - ${r}.disk_mib, allocations = allocations - 1 where node_id = ${r}.node_id`;
  if (kind === 'postgresql') {
    return [
      `create function novacron_node_allocated() returns trigger language plpgsql as $$
       begin
         if tg_op in ('DELETE', 'UPDATE') then ${sub('old')}; end if;
         if tg_op in ('INSERT', 'UPDATE') then ${add('new')}; end if;
         return null;
       end $$`,
      `create trigger allocations_node_allocated after insert or update or delete on allocations
         for each row execute function novacron_node_allocated()`,
    ];
  }
  return [
    `create trigger allocations_node_allocated_insert after insert on allocations begin ${add('new')}; end`,
    `create trigger allocations_node_allocated_delete after delete on allocations begin ${sub('old')}; end`,
    `create trigger allocations_node_allocated_update after update on allocations begin ${sub('old')}; ${add('new')}; end`,
  ];
}

/** Arbitrary constant naming NovaCron's schema lock among advisory locks (int8). */
export const SCHEMA_LOCK_ID = 4_985_722_011;

export interface MigrationResult {
  /** Versions applied by this call (empty when the schema was already current). */
  readonly applied: readonly number[];
  /** Schema version after the call. */
  readonly version: number;
}

/**
 * Applies pending migrations. Idempotent; safe to call from several processes at once.
 * `now` stamps `applied_at`.
 */
export async function runSchemaMigrations(
  db: Kysely<Database>,
  kind: DialectKind,
  now: () => Date,
  migrations: readonly SchemaMigration[] = SCHEMA_MIGRATIONS,
): Promise<MigrationResult> {
  const latest = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  return db.transaction().execute(async (tx) => {
    // SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE, see dialect.ts).
    if (kind === 'postgresql')
      await sql`select pg_advisory_xact_lock(${sql.lit(SCHEMA_LOCK_ID)})`.execute(tx);
    await tx.schema
      .createTable('schema_migrations')
      .ifNotExists()
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('applied_at', t(sqlTypes(kind).timestamp), (c) => c.notNull())
      .execute();
    const rows = await tx.selectFrom('schema_migrations').select('version').execute();
    const done = new Set(rows.map((r) => r.version));
    const newest = rows.reduce((m, r) => Math.max(m, r.version), 0);
    if (newest > latest) {
      throw new NovaCronError(
        ErrorCode.Internal,
        `database schema version ${newest} is newer than this NovaCron (knows up to ${latest})`,
        { hint: 'upgrade NovaCron on this node, or point it at another database', key: 'database' },
      );
    }
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      await m.up(tx, kind);
      await tx
        .insertInto('schema_migrations')
        .values({ version: m.version, name: m.name, applied_at: now().toISOString() })
        .execute();
      applied.push(m.version);
    }
    return { applied, version: Math.max(newest, ...applied, 0) };
  });
}
