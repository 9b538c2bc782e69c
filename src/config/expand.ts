// `${VAR}` / `${VAR:default}` expansion of string values from a configuration file (pure: the
// environment is passed in). `$${` is a literal `${`.

/** A `${VAR}` without default whose variable is unset (or empty). */
export interface MissingVariable {
  readonly variable: string;
  /** Dotted path of the key whose value uses it. */
  readonly path: string;
}

export interface ExpansionResult<T> {
  readonly value: T;
  /** Dotted paths whose string value contained at least one `${…}`. */
  readonly expanded: ReadonlySet<string>;
  readonly missing: readonly MissingVariable[];
}

const PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}/g;

/**
 * Expands one string. A variable set to the empty string counts as unset, so `${VAR:default}`
 * falls back and `${VAR}` is reported missing. Missing variables are left as written.
 */
export function expandString(
  input: string,
  env: Readonly<Record<string, string | undefined>>,
): { value: string; used: boolean; missing: string[] } {
  const missing: string[] = [];
  let used = false;
  const value = input.replace(PATTERN, (match, name: string | undefined, def: string | undefined) => {
    if (name === undefined) return '${'; // the $${ escape
    used = true;
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def !== undefined) return def;
    missing.push(name);
    return match;
  });
  return { value, used, missing };
}

export function joinPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent ? `${parent}.${key}` : key;
}

/** Expands every string scalar (not keys) of a parsed document, recording paths and missing variables. */
export function expandValues<T>(
  value: T,
  env: Readonly<Record<string, string | undefined>>,
): ExpansionResult<T> {
  const expanded = new Set<string>();
  const missing: MissingVariable[] = [];
  const walk = (v: unknown, path: string): unknown => {
    if (typeof v === 'string') {
      const r = expandString(v, env);
      if (r.used) expanded.add(path);
      for (const variable of r.missing) missing.push({ variable, path });
      return r.value;
    }
    if (Array.isArray(v)) return v.map((item, i) => walk(item, joinPath(path, i)));
    if (isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, child] of Object.entries(v)) out[k] = walk(child, joinPath(path, k));
      return out;
    }
    return v;
  };
  return { value: walk(value, '') as T, expanded, missing };
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return (
    typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype
  );
}
