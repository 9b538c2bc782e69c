// Hot statements (VM insert, allocation insert, per-node totals, audit events) with their SQL
// text compiled once per store instead of built and compiled by Kysely on every call.
import { CompiledQuery } from 'kysely';
import type { Compilable, Kysely, QueryResult } from 'kysely';
import type { RepoContext } from './codec.js';
import type { Database } from './types.js';

/**
 * Runs a hot statement with its SQL text compiled once per store: the first call builds it with
 * Kysely (`build`), checks that Kysely's parameters are exactly `params` in that order, and keeps
 * the text under `key`; later calls send the text with the new `params`, skipping Kysely's
 * per-call building and compiling (a large part of the CPU of a small statement). `key` must name
 * one SQL shape: same table, columns, row count, same conditions.
 */
export async function cachedQuery<R>(
  db: Kysely<Database>,
  ctx: RepoContext,
  key: string,
  build: () => Compilable<R>,
  params: readonly unknown[],
): Promise<QueryResult<R>> {
  const text = ctx.statements?.get(key);
  if (text !== undefined) return db.executeQuery<R>(CompiledQuery.raw(text, [...params]));
  const compiled = build().compile();
  const same =
    compiled.parameters.length === params.length && compiled.parameters.every((p, i) => p === params[i]);
  if (same && ctx.statements !== undefined && ctx.statements.size < 64) ctx.statements.set(key, compiled.sql);
  return db.executeQuery(compiled);
}
