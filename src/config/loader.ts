// Loads the effective configuration: defaults < file < environment < flags. Reads and parses the
// YAML file (syntax errors located file:line:col), expands `${VAR}` / `${VAR:default}`, applies
// `NOVACRON_…` variables and flags, coerces strings by the schema, validates, and records where
// every key's value came from.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfigError, ErrorCode, type ConfigIssue } from '../errors.js';
import { coerceTree } from './coerce.js';
import { expandValues, isPlainObject } from './expand.js';
import { envLayer, flagLayer, type ConfigOverrides, type Layer } from './overrides.js';
import type { NovaCronConfig } from './schema.js';
import { leaves } from './schema-walk.js';
import { formatIssue, validateConfig } from './validate.js';
import type { ParsedYaml } from './yaml-file.js';

export type { ConfigOverrides } from './overrides.js';
export type { ParsedYaml } from './yaml-file.js';

export type ConfigSource = 'default' | 'file' | 'env' | 'flag';

export interface LoadOptions {
  /** YAML file to load; relative to `cwd`. Without it, `NOVACRON_CONFIG` from `env`; without that, defaults only. */
  readonly file?: string | undefined;
  /** Environment for `${VAR}` expansion and `NOVACRON_…` overrides (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv | Readonly<Record<string, string | undefined>>;
  /** Dotted path -> value (command-line flags); highest precedence. */
  readonly flags?: ConfigOverrides;
  /** Directory a relative `file` is resolved against (default `process.cwd()`). */
  readonly cwd?: string;
  /** Apply `NOVACRON_…` overrides from `env` (default true; `config validate` checks the file alone). */
  readonly envOverrides?: boolean;
}

export interface LoadedConfig {
  /** Complete, validated configuration. */
  readonly config: NovaCronConfig;
  /** Absolute path of the file loaded, or undefined when running on defaults (and env/flags). */
  readonly file: string | undefined;
  /** Every key (dotted leaf path) -> the layer its value came from. */
  readonly sources: Map<string, ConfigSource>;
  /** Leaf path -> detail of its origin: `novacron.yaml:12:14`, `NOVACRON_API__REST_PORT`, `--set api.rest_port`. */
  readonly origins: Map<string, string>;
  /** Non-fatal remarks (YAML warnings) for the log. */
  readonly warnings: readonly string[];
}

/** `cluster.peers[0].url` -> ['cluster', 'peers', 0, 'url']. */
export function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) {
      out.push(part);
      continue;
    }
    if (m[1]) out.push(m[1]);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/** `file:line:col` of the value at `path` in a parsed file, or undefined when the file does not set it. */
export function locate(parsed: ParsedYaml, path: string): string | undefined {
  const segs = pathSegments(path);
  for (let n = segs.length; n > 0; n--) {
    const node = parsed.doc.getIn(segs.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) {
      const pos = parsed.lines.linePos(node.range[0]);
      return `${parsed.file}:${pos.line}:${pos.col}`;
    }
  }
  return undefined;
}

/** Deep merge for config layers: mappings merge key by key, everything else (lists too) is replaced. */
export function mergeLayers(...trees: readonly Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const t of trees) mergeInto(out, t);
  return out;
}

function mergeInto(target: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(src)) {
    const cur = target[k];
    if (isPlainObject(v) && isPlainObject(cur)) mergeInto(cur, v);
    else target[k] = isPlainObject(v) ? mergeLayers(v) : v;
  }
}

function hasPath(tree: unknown, segments: readonly string[]): boolean {
  let node = tree;
  for (const s of segments) {
    if (!isPlainObject(node) || !(s in node)) return false;
    node = node[s];
  }
  return true;
}

function layerSets(layer: Layer, leafPath: string): string | undefined {
  for (const [p, origin] of layer.origins) {
    if (p === leafPath || p.startsWith(leafPath + '.')) return origin;
  }
  return undefined;
}

/** Loads, expands, overrides and validates; throws a ConfigError listing every problem at once. */
export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const fileOpt = options.file ?? env.NOVACRON_CONFIG;
  const file = fileOpt ? resolve(cwd, fileOpt) : undefined;

  let parsed: ParsedYaml | undefined;
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError(
        code === 'ENOENT'
          ? `configuration file not found: ${file}`
          : `cannot read ${file}: ${(err as Error).message}`,
        [],
        {
          key: file,
          hint: 'pass an existing file with --config, or none to run on the defaults',
          cause: err,
        },
        ErrorCode.ConfigParse,
      );
    }
    // The YAML parser is loaded only when there is a file: a node on defaults boots without it.
    const { parseYamlConfig } = await import('./yaml-file.js');
    parsed = parseYamlConfig(text, file);
  }
  return resolveConfig({
    parsed,
    env,
    flags: options.flags ?? {},
    envOverrides: options.envOverrides ?? true,
  });
}

/** The pure part of loadConfig: layers a parsed file (if any), the environment and flags. */
export function resolveConfig(input: {
  readonly parsed: ParsedYaml | undefined;
  readonly env: NodeJS.ProcessEnv | Readonly<Record<string, string | undefined>>;
  readonly flags: ConfigOverrides;
  readonly envOverrides?: boolean;
}): LoadedConfig {
  const { parsed, env, flags } = input;
  const issues: ConfigIssue[] = [];

  let fileTree: Record<string, unknown> = {};
  if (parsed) {
    const exp = expandValues(parsed.value, env);
    if (exp.missing.length) {
      const missingIssues: ConfigIssue[] = exp.missing.map((m) => ({
        path: m.path,
        value: `\${${m.variable}}`,
        message: `environment variable ${m.variable} is not set (required by \${${m.variable}} in ${m.path})`,
        allowed: `set ${m.variable}, or write \${${m.variable}:default}`,
        source: locate(parsed, m.path) ?? parsed.file,
      }));
      throw new ConfigError(
        `missing environment variable${missingIssues.length > 1 ? 's' : ''}:\n  ` +
          missingIssues.map(formatIssue).join('\n  '),
        missingIssues,
        { key: exp.missing[0]!.variable, hint: 'export the variables named above or give them a default' },
        ErrorCode.ConfigEnvMissing,
      );
    }
    const coerced = coerceTree(exp.value);
    fileTree = coerced.value;
    for (const p of coerced.problems) {
      issues.push({
        path: p.path,
        value: p.value,
        message: p.reason,
        source: locate(parsed, p.path) ?? parsed.file,
      });
    }
  }

  const envL = input.envOverrides === false ? envLayer({}) : envLayer(env);
  const flagL = flagLayer(flags);
  issues.push(...envL.issues, ...flagL.issues);

  const merged = mergeLayers(fileTree, envL.tree, flagL.tree);
  const sourceOf = (path: string): string | undefined => {
    const f = originIn(flagL, path);
    if (f) return `flag ${f.replace(/^--set /, '')}`;
    const e = originIn(envL, path);
    if (e) return `env ${e}`;
    if (parsed) {
      const loc = locate(parsed, path);
      if (loc) return `file ${loc}`;
    }
    return undefined;
  };
  const result = validateConfig(merged, sourceOf);
  if (!result.ok) issues.push(...result.issues);
  if (issues.length || !result.ok) {
    issues.sort((a, b) => a.path.localeCompare(b.path));
    const where = parsed ? ` (${parsed.file})` : '';
    throw new ConfigError(
      `invalid configuration${where}: ${issues.length} problem${issues.length === 1 ? '' : 's'}\n  ` +
        issues.map(formatIssue).join('\n  '),
      issues,
      {
        hint: 'fix the keys listed above; `novacron config print --explain` shows where each value comes from',
      },
    );
  }

  const sources = new Map<string, ConfigSource>();
  const origins = new Map<string, string>();
  for (const leaf of leaves()) {
    const f = layerSets(flagL, leaf.path);
    const e = layerSets(envL, leaf.path);
    if (f) {
      sources.set(leaf.path, 'flag');
      origins.set(leaf.path, f);
    } else if (e) {
      sources.set(leaf.path, 'env');
      origins.set(leaf.path, e);
    } else if (parsed && hasPath(fileTree, leaf.segments)) {
      sources.set(leaf.path, 'file');
      origins.set(leaf.path, locate(parsed, leaf.path) ?? parsed.file);
    } else {
      sources.set(leaf.path, 'default');
      origins.set(leaf.path, 'default');
    }
  }
  return {
    config: result.config,
    file: parsed?.file,
    sources,
    origins,
    warnings: parsed?.warnings ?? [],
  };
}

/** The origin of the value a layer set at `path` or at one of its ancestors (a record set whole). */
function originIn(layer: Layer, path: string): string | undefined {
  const plain = path.replace(/\[\d+\].*$/, '');
  for (const [p, origin] of layer.origins) {
    if (plain === p || plain.startsWith(p + '.')) return origin;
  }
  return undefined;
}
