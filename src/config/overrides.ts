// Configuration layers above the file: `NOVACRON_…` environment variables and dotted-path flags.
// Pure: each turns its input into a partial config tree plus the problems found, naming the
// variable or flag. Env names map to schema paths by walking the schema, splitting on `__` only.
import { ValidationError, type ConfigIssue } from '../errors.js';
import { coerceString } from './coerce.js';
import {
  ENV_PREFIX,
  closest,
  describeAllowed,
  envNameFor,
  leaves,
  resolvePath,
  rootSchema,
  sectionPaths,
  suggestKey,
} from './schema-walk.js';

/** Dotted path -> value, e.g. `{ 'system.data_dir': '/x' }`; strings are coerced by the key's type. */
export type ConfigOverrides = Readonly<Record<string, unknown>>;

/**
 * `NOVACRON_` variables that are not configuration keys: the file to load, CLI debugging, test knobs.
 * Any other `NOVACRON_` variable whose name has a `__` must name a key.
 */
export const NON_CONFIG_ENV = ['NOVACRON_CONFIG', 'NOVACRON_DEBUG'] as const;

export interface Layer {
  /** Partial config tree set by this layer. */
  readonly tree: Record<string, unknown>;
  /** Dotted path (leaf or record entry) -> what set it (`NOVACRON_API__REST_PORT`, `--set api.rest_port`). */
  readonly origins: Map<string, string>;
  readonly issues: ConfigIssue[];
  readonly warnings: string[];
}

export function setPath(tree: Record<string, unknown>, segments: readonly string[], value: unknown): void {
  let node = tree;
  for (let i = 0; i < segments.length - 1; i++) {
    const seg = segments[i]!;
    const next = node[seg];
    if (typeof next === 'object' && next !== null && !Array.isArray(next))
      node = next as Record<string, unknown>;
    else {
      const fresh: Record<string, unknown> = {};
      node[seg] = fresh;
      node = fresh;
    }
  }
  node[segments[segments.length - 1]!] = value;
}

/** Maps `NOVACRON_…` variables onto a config tree. Unknown `NOVACRON_X__Y` names are errors. */
export function envLayer(env: NodeJS.ProcessEnv | Readonly<Record<string, string | undefined>>): Layer {
  const layer: Layer = { tree: {}, origins: new Map(), issues: [], warnings: [] };
  const names = Object.keys(env)
    .filter((n) => n.startsWith(ENV_PREFIX))
    .sort();
  for (const name of names) {
    const raw = env[name];
    if (raw === undefined) continue;
    if ((NON_CONFIG_ENV as readonly string[]).includes(name)) continue;
    const rest = name.slice(ENV_PREFIX.length);
    const source = `env ${name}`;
    if (!rest.includes('__')) {
      // Not an override; flag the likely typos: a section name or a key written with single underscores.
      const section = sectionPaths().find((p) => !p.includes('.') && p.toUpperCase() === rest);
      const flat = leaves().find((l) => envNameFor(l.path).replace(/__/g, '_') === name);
      if (section) {
        layer.issues.push({
          path: section,
          value: raw,
          message: `${name} names a whole section; set one key, e.g. ${envNameFor(leaves().find((l) => l.segments[0] === section)!.path)}`,
          source,
        });
      } else if (flat) {
        layer.issues.push({
          path: flat.path,
          value: raw,
          message: `${name} is not a configuration variable: levels are separated by a double underscore; did you mean ${envNameFor(flat.path)}?`,
          source,
        });
      }
      continue;
    }
    const segments = rest.split('__').map((s) => s.toLowerCase());
    if (segments.some((s) => s === '')) {
      layer.issues.push({
        path: segments.join('.'),
        value: raw,
        message: `${name}: empty path segment`,
        source,
      });
      continue;
    }
    const res = resolvePath(segments);
    if (res.kind === 'unknown') {
      const guess = suggestKey(res.known, res.badSegment);
      const envGuess =
        guess ??
        closest(
          segments.join('.'),
          leaves().map((l) => l.path),
        );
      layer.issues.push({
        path: segments.join('.'),
        value: raw,
        message:
          `unknown configuration variable ${name}` +
          (envGuess ? `; did you mean ${envNameFor(envGuess)}?` : ` (no key ${segments.join('.')})`),
        source,
      });
      continue;
    }
    if (res.kind === 'section') {
      layer.issues.push({
        path: segments.join('.'),
        value: raw,
        message: `${name} names a section; set its keys one by one`,
        allowed: describeAllowed(res.schema),
        source,
      });
      continue;
    }
    const c = coerceString(res.schema, raw);
    if (!c.ok) {
      layer.issues.push({
        path: segments.join('.'),
        value: raw,
        message: c.reason,
        allowed: describeAllowed(res.schema),
        source,
      });
      continue;
    }
    setPath(layer.tree, segments, c.value);
    layer.origins.set(segments.join('.'), name);
  }
  return layer;
}

/** Maps dotted-path flags (`--set api.rest_port=18080`, `--data-dir`) onto a config tree. */
export function flagLayer(flags: ConfigOverrides): Layer {
  const layer: Layer = { tree: {}, origins: new Map(), issues: [], warnings: [] };
  for (const [path, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const segments = path.split('.');
    const source = `flag ${path}`;
    const res = resolvePath(segments, rootSchema);
    if (res.kind === 'unknown') {
      const guess = suggestKey(res.known, res.badSegment);
      layer.issues.push({
        path,
        value,
        message: `unknown configuration key${guess ? `; did you mean ${guess}?` : ''}`,
        source,
      });
      continue;
    }
    if (res.kind === 'section' && typeof value !== 'object') {
      layer.issues.push({
        path,
        value,
        message: 'names a section; set its keys one by one',
        allowed: describeAllowed(res.schema),
        source,
      });
      continue;
    }
    let v: unknown = value;
    if (typeof value === 'string') {
      const c = coerceString(res.schema, value);
      if (!c.ok) {
        layer.issues.push({ path, value, message: c.reason, allowed: describeAllowed(res.schema), source });
        continue;
      }
      v = c.value;
    }
    setPath(layer.tree, segments, v);
    layer.origins.set(path, `--set ${path}`);
  }
  return layer;
}

/** Parses `key=value` strings (repeatable `--set`) into overrides. */
export function parseSetFlags(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0)
      throw new ValidationError(`--set expects key=value, got "${p}"`, {
        hint: 'write --set section.key=value',
      });
    out[p.slice(0, eq).trim()] = p.slice(eq + 1);
  }
  return out;
}
