// Pure helpers of the cache: key checks and JSON encoding of values.
import { ValidationError } from '../errors.js';

export function requireKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0)
    throw new ValidationError('cache key must be a non-empty string');
}

/** JSON text of a value; undefined (and anything JSON.stringify drops) is rejected. */
export function encodeValue(value: unknown): string {
  const json = JSON.stringify(value) as string | undefined;
  if (json === undefined)
    throw new ValidationError('cache value must be JSON-serialisable (got undefined or a function)');
  return json;
}

/** Parses cached JSON text; garbage (written by someone else) reads as a miss. */
export function decodeValue<T>(json: string | null | undefined): T | undefined {
  if (json === null || json === undefined) return undefined;
  try {
    return JSON.parse(json) as T;
  } catch {
    return undefined;
  }
}

/** `host:port` → parts; a bare host means port 6379. */
export function parseRedisAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(address.trim());
  const host = m?.[1] ?? '';
  const port = m?.[2] === undefined ? 6379 : Number(m[2]);
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ValidationError(`cache.address must be host:port, got "${address}"`, { key: 'cache.address' });
  }
  return { host, port };
}
