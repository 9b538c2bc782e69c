// Schema-directed coercion of string values (from the environment, flags or `${VAR}` expansion)
// into the type their key expects. Pure. A string that cannot be coerced is returned unchanged,
// so that validation reports it with the key's path, the value and what is allowed.
import { isPlainObject, joinPath } from './expand.js';
import {
  isRecord,
  isSection,
  recordValueSchema,
  resolvePath,
  schemaType,
  type JsonSchema,
  rootSchema,
} from './schema-walk.js';

export type Coerced =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly reason: string };

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);

/**
 * Converts `raw` to the type of `schema`:
 * integer/number (decimal), boolean (true/false/yes/no/on/off/1/0), array (JSON array or
 * comma-separated), record (JSON object or `k=v,k2=v2`), section/object (JSON object).
 * `ok: false` only for malformed JSON, whose parse error is worth reporting as such.
 */
export function coerceString(schema: JsonSchema, raw: string): Coerced {
  const t = schemaType(schema);
  const s = raw.trim();
  switch (t ?? '') {
    case 'integer':
      return /^[+-]?\d+$/.test(s) ? { ok: true, value: Number(s) } : { ok: true, value: raw };
    case 'number': {
      const n = s === '' ? NaN : Number(s);
      return Number.isFinite(n) ? { ok: true, value: n } : { ok: true, value: raw };
    }
    case 'boolean': {
      const l = s.toLowerCase();
      if (TRUE.has(l)) return { ok: true, value: true };
      if (FALSE.has(l)) return { ok: true, value: false };
      return { ok: true, value: raw };
    }
    case 'array': {
      if (s.startsWith('[')) return parseJson(s, 'array');
      if (s === '') return { ok: true, value: [] };
      const item = schema.items;
      if (item && isSection(item)) return { ok: true, value: raw }; // objects need JSON
      const parts = s.split(',').map((p) => p.trim());
      return { ok: true, value: item ? parts.map((p) => coerceValue(item, p)) : parts };
    }
    case 'object': {
      if (s.startsWith('{')) return parseJson(s, 'object');
      if (isRecord(schema)) {
        if (s === '') return { ok: true, value: {} };
        const v = recordValueSchema(schema);
        const out: Record<string, unknown> = {};
        for (const pair of s.split(',')) {
          const eq = pair.indexOf('=');
          if (eq <= 0) return { ok: true, value: raw };
          const val = pair.slice(eq + 1).trim();
          out[pair.slice(0, eq).trim()] = v ? coerceValue(v, val) : val;
        }
        return { ok: true, value: out };
      }
      return { ok: true, value: raw };
    }
    default:
      return { ok: true, value: raw };
  }
}

function parseJson(s: string, want: 'array' | 'object'): Coerced {
  try {
    const v: unknown = JSON.parse(s);
    return { ok: true, value: v };
  } catch (err) {
    return { ok: false, reason: `not valid JSON (expected a JSON ${want}): ${(err as Error).message}` };
  }
}

function coerceValue(schema: JsonSchema, raw: string): unknown {
  const r = coerceString(schema, raw);
  return r.ok ? r.value : raw;
}

export interface CoercionProblem {
  readonly path: string;
  readonly value: string;
  readonly reason: string;
}

/**
 * Coerces, in place of a copy, every string in `tree` whose key expects another type. Returns the
 * new tree and the strings that could not be parsed (malformed JSON).
 */
export function coerceTree(
  tree: Record<string, unknown>,
  schema: JsonSchema = rootSchema,
): { value: Record<string, unknown>; problems: CoercionProblem[] } {
  const problems: CoercionProblem[] = [];
  const walk = (v: unknown, s: JsonSchema | undefined, path: string): unknown => {
    if (!s) return v;
    // `system:` with every key commented out parses as null: an empty section, not an error.
    if (v === null && isSection(s)) return {};
    if (typeof v === 'string') {
      if (schemaType(s) === 'string') return v;
      const r = coerceString(s, v);
      if (!r.ok) {
        problems.push({ path, value: v, reason: r.reason });
        return v;
      }
      return r.value;
    }
    if (Array.isArray(v)) {
      const item = schemaType(s) === 'array' ? s.items : undefined;
      return v.map((x, i) => walk(x, item, joinPath(path, i)));
    }
    if (isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, child] of Object.entries(v)) {
        const cs = isSection(s) ? s.properties?.[k] : isRecord(s) ? recordValueSchema(s) : undefined;
        out[k] = walk(child, cs, joinPath(path, k));
      }
      return out;
    }
    return v;
  };
  return { value: walk(tree, schema, '') as Record<string, unknown>, problems };
}

/** Schema of a dotted path if the path is a key (or a record entry) of the schema. */
export function schemaAt(path: string): JsonSchema | undefined {
  const r = resolvePath(path.split('.'));
  return r.kind === 'leaf' || r.kind === 'record-entry' || r.kind === 'section' ? r.schema : undefined;
}
