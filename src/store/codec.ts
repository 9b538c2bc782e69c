// Pure helpers shared by the repositories: JSON columns, list cursors, limits, and the mapping of
// driver errors to NovaCron errors. No I/O here.
import type { Kysely } from 'kysely';
import { ConflictError, NovaCronError, UnavailableError, ValidationError } from '../errors.js';
import { classifyDbError, describeDbCause } from './dialect.js';
import type { Database, DialectKind, JsonObject, JsonText } from './types.js';

export function toJson(value: object): JsonText {
  return JSON.stringify(value);
}

/** Parses a JSON column into an object; a non-object document (never written by us) reads as {}. */
export function fromJsonObject(text: JsonText | null): JsonObject {
  if (text === null) return {};
  const v: unknown = JSON.parse(text);
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

export function fromJsonLabels(text: JsonText): Readonly<Record<string, string>> {
  const o = fromJsonObject(text);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === 'string') out[k] = v;
  return out;
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new ValidationError(`limit must be an integer in 1..${MAX_LIMIT}, got ${limit}`, { key: 'limit' });
  }
  return limit;
}

/** Position after the last row of a page ordered by (created_at, id). */
export interface CursorPosition {
  readonly createdAt: string;
  readonly id: string;
}

export function encodeCursor(p: CursorPosition): string {
  return Buffer.from(JSON.stringify([p.createdAt, p.id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): CursorPosition {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') {
      return { createdAt: v[0], id: v[1] };
    }
  } catch {
    // fall through to the error below
  }
  throw new ValidationError('invalid cursor', {
    key: 'cursor',
    hint: 'pass the nextCursor of a previous page',
  });
}

/** What a repository needs from the store it belongs to. */
export interface RepoContext {
  readonly kind: DialectKind;
  readonly now: () => Date;
  /** `host:port` or the SQLite file, for error messages. */
  readonly target: string;
  /** True when the repository is bound to a transaction (store.transaction). */
  readonly inTransaction: boolean;
  /** Runs `fn` in a transaction: the current one when bound to a transaction, else a new one. */
  atomically<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T>;
  /** SQL texts of the hot statements, compiled once per store (see cached-query.ts). */
  readonly statements?: Map<string, string>;
}

/** Maps driver errors: unique violations become ConflictError (message from `onUnique`),
 *  lost connections UnavailableError `database unavailable: <target>: <cause>`. */
export function mapDbError(err: unknown, target: string, onUnique?: () => string): unknown {
  if (err instanceof NovaCronError) return err;
  switch (classifyDbError(err)) {
    case 'unique':
      return new ConflictError(onUnique?.() ?? 'record already exists', { cause: err });
    case 'foreign_key':
      return new ConflictError('referenced record does not exist (or is still referenced)', { cause: err });
    case 'connection':
      return new UnavailableError(`database unavailable: ${target}: ${describeDbCause(err)}`, {
        cause: err,
        key: 'database',
      });
    case 'other':
      return err;
  }
}

export async function guard<T>(ctx: RepoContext, fn: () => Promise<T>, onUnique?: () => string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapDbError(err, ctx.target, onUnique);
  }
}
