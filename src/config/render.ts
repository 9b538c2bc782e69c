// Turning a configuration back into text: secrets redacted, YAML with optional per-key comments
// (used by `config print --explain` and `config migrate`).
import { Document, isMap, isScalar } from 'yaml';
import { isPlainObject } from './expand.js';
import { pathSegments } from './loader.js';
import type { NovaCronConfig } from './schema.js';
import { isSection, rootSchema, secretPaths, type JsonSchema } from './schema-walk.js';

export { secretPaths } from './schema-walk.js';

export const REDACTED = '***';

/** A deep copy with every non-empty secret (`x-secret` keys) replaced by `***`. */
export function redactSecrets<T extends NovaCronConfig>(config: T): T {
  const copy = structuredClone(config);
  for (const path of secretPaths()) {
    const segs = path.split('.');
    let node: unknown = copy;
    for (const s of segs.slice(0, -1)) node = (node as Record<string, unknown> | undefined)?.[s];
    const last = segs[segs.length - 1]!;
    if (typeof node === 'object' && node !== null) {
      const obj = node as Record<string, unknown>;
      if (typeof obj[last] === 'string' && obj[last] !== '') obj[last] = REDACTED;
    }
  }
  return copy;
}

export interface YamlOptions {
  /** Dotted path -> trailing comment on that key's line. */
  readonly comments?: ReadonlyMap<string, string>;
  /** Comment printed above the document. */
  readonly header?: string;
  /** Comment printed after the document. */
  readonly trailer?: string;
}

/** A copy whose sections list their keys in schema order (unknown keys last), for stable output. */
export function orderBySchema(value: unknown, schema: JsonSchema | undefined = rootSchema): unknown {
  if (!isPlainObject(value)) return value;
  if (!schema || !isSection(schema)) return { ...value };
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(schema.properties ?? {})) {
    if (k in value) out[k] = orderBySchema(value[k], schema.properties?.[k]);
  }
  for (const [k, v] of Object.entries(value)) if (!(k in out)) out[k] = v;
  return out;
}

/**
 * YAML text of a (partial) configuration tree in schema order; does not redact (call
 * redactSecrets first). A comment goes after a scalar value, or after the key of a list or map.
 */
export function configToYaml(config: unknown, options: YamlOptions = {}): string {
  const doc = new Document(orderBySchema(config));
  if (options.header) doc.commentBefore = options.header;
  for (const [path, comment] of options.comments ?? []) {
    const segs = pathSegments(path);
    const last = segs[segs.length - 1];
    const parent = segs.length > 1 ? doc.getIn(segs.slice(0, -1), true) : doc.contents;
    if (!isMap(parent) || last === undefined) continue;
    const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
    if (!pair) continue;
    if (isScalar(pair.value)) pair.value.comment = ` ${comment}`;
    else if (isScalar(pair.key)) pair.key.comment = ` ${comment}`;
  }
  if (options.trailer) doc.comment = options.trailer;
  return doc.toString({ lineWidth: 0 });
}
