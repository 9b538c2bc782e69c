// Legacy migration (pure): merges the old per-mode DWCP v3 files (dwcp-v3-datacenter.yaml,
// -internet.yaml, -hybrid.yaml) into one unified configuration tree, and lists every key it could
// not carry over. Per-mode settings land in dwcp.profiles.<mode>; shared settings keep the value
// of the first file that sets them (a different later value is reported as a conflict); feature
// flags are on when any file turns them on. `${VAR}` values are carried over unexpanded.
import { ConfigError } from '../errors.js';
import { coerceTree } from './coerce.js';
import { expandValues, isPlainObject } from './expand.js';
import { configToYaml } from './render.js';
import { formatIssue, validateConfig } from './validate.js';
import { NETWORK_MODES, type NetworkMode } from './schema.js';

export interface LegacyFile {
  /** Name shown in reports (usually the path given on the command line). */
  readonly file: string;
  /** The parsed YAML, not expanded. */
  readonly value: unknown;
}

export interface UnmappedKey {
  readonly file: string;
  /** Dotted path in the legacy file. */
  readonly path: string;
  readonly value: unknown;
  readonly reason: string;
}

export interface MigrationConflict {
  readonly file: string;
  readonly path: string;
  readonly value: unknown;
  /** Unified key both files map to. */
  readonly target: string;
  readonly kept: unknown;
  readonly keptFrom: string;
}

export interface MigrationResult {
  /** Partial unified configuration (only the keys carried over). */
  readonly config: Record<string, unknown>;
  readonly unmapped: readonly UnmappedKey[];
  readonly conflicts: readonly MigrationConflict[];
  /** The mode each file was read as (undefined: could not tell; its per-mode keys are unmapped). */
  readonly modes: ReadonlyMap<string, NetworkMode | undefined>;
  /** Legacy path -> unified path for every key carried over, per file. */
  readonly mapped: readonly { readonly file: string; readonly path: string; readonly target: string }[];
}

type Transform = (v: unknown) => { ok: true; value: unknown } | { ok: false; reason: string };
type Combine = 'first' | 'any';

interface Rule {
  /** Unified path; `{mode}` is the file's mode. */
  readonly target: string;
  readonly transform?: Transform;
  readonly combine?: Combine;
  /** Further keys set alongside (e.g. etcd endpoints imply cluster.mode: etcd). */
  readonly also?: Readonly<Record<string, unknown>>;
}

const isVar = (v: unknown) => typeof v === 'string' && v.includes('${');

const oneOf =
  (table: Readonly<Record<string, string>>, what: string): Transform =>
  (v) => {
    if (isVar(v)) return { ok: true, value: v };
    const hit = typeof v === 'string' ? table[v.toLowerCase()] : undefined;
    return hit !== undefined
      ? { ok: true, value: hit }
      : {
          ok: false,
          reason: `${what} ${JSON.stringify(v)} has no equivalent (allowed: ${[...new Set(Object.values(table))].join(', ')})`,
        };
  };

const encryption: Transform = (v) => {
  if (isVar(v) || typeof v === 'boolean') return { ok: true, value: v };
  if (typeof v === 'string' && ['aes-256-gcm', 'aes256gcm', 'aes-gcm'].includes(v.toLowerCase()))
    return { ok: true, value: true };
  if (typeof v === 'string' && ['none', 'off', 'disabled'].includes(v.toLowerCase()))
    return { ok: true, value: false };
  return {
    ok: false,
    reason: `cipher ${JSON.stringify(v)} is not offered (DWCP encrypts with AES-256-GCM only)`,
  };
};

const feature = (name: string): Rule => ({ target: `dwcp.features.${name}`, combine: 'any' });

/** Legacy dotted path -> rule. Anything not listed (and not metadata) is reported as unmapped. */
export const LEGACY_RULES: Readonly<Record<string, Rule>> = {
  'node.id': { target: 'system.node_id' },
  'node.cluster': { target: 'system.cluster_id' },
  'node.data_dir': { target: 'system.data_dir' },
  'node.log_level': { target: 'system.log_level' },
  'dwcp.enabled': { target: 'dwcp.enabled', combine: 'any' },
  'dwcp.listen_port': { target: 'dwcp.listen_port' },
  'dwcp.amst.enabled': feature('transport_amst'),
  'dwcp.amst.initial_streams': { target: 'dwcp.profiles.{mode}.streams' },
  'dwcp.amst.min_streams': { target: 'dwcp.profiles.{mode}.min_streams' },
  'dwcp.amst.max_streams': { target: 'dwcp.profiles.{mode}.max_streams' },
  'dwcp.amst.congestion_control': {
    target: 'dwcp.profiles.{mode}.congestion_control',
    transform: oneOf({ auto: 'auto', bbr: 'bbr', cubic: 'cubic', reno: 'reno' }, 'congestion control'),
  },
  'dwcp.amst.rdma.enabled': { target: 'dwcp.profiles.{mode}.rdma_enabled' },
  'dwcp.hde.enabled': feature('compression_hde'),
  'dwcp.hde.compression.algorithm': {
    target: 'dwcp.profiles.{mode}.compression',
    transform: oneOf({ none: 'none', lz4: 'lz4', zstd: 'zstd', zstandard: 'zstd' }, 'codec'),
  },
  'dwcp.hde.compression.level': { target: 'dwcp.profiles.{mode}.compression_level' },
  'dwcp.pba.enabled': feature('prediction_pba'),
  'dwcp.pba.ml_service': { target: 'ml.service_address' },
  'dwcp.pba.timeout_ms': { target: 'ml.timeout_ms' },
  'dwcp.acp.enabled': feature('consensus_acp'),
  'dwcp.acp.algorithm': {
    target: 'dwcp.profiles.{mode}.consensus',
    transform: oneOf({ raft: 'raft', gossip: 'gossip', adaptive: 'adaptive' }, 'consensus'),
  },
  'dwcp.acp.etcd_endpoints': { target: 'cluster.etcd.endpoints', also: { 'cluster.mode': 'etcd' } },
  'dwcp.ass.enabled': feature('sync_ass'),
  'dwcp.itp.enabled': feature('placement_itp'),
  'dwcp.itp.strategy': { target: 'scheduler.strategy' },
  'dwcp.security.encryption': { target: 'dwcp.features.encryption', transform: encryption },
  'dwcp.security.tls.cert': { target: 'security.tls.cert_file' },
  'dwcp.security.tls.key': { target: 'security.tls.key_file' },
  'dwcp.security.tls.ca': { target: 'security.tls.ca_file' },
  'monitoring.prometheus.enabled': { target: 'monitoring.metrics.enabled' },
  'monitoring.prometheus.path': { target: 'monitoring.metrics.path' },
  'database.type': {
    target: 'database.type',
    transform: oneOf(
      { postgresql: 'postgresql', postgres: 'postgresql', sqlite: 'sqlite', sqlite3: 'sqlite' },
      'database',
    ),
  },
  'database.host': { target: 'database.host' },
  'database.port': { target: 'database.port' },
  'database.name': { target: 'database.database' },
  'database.user': { target: 'database.user' },
  'database.password': { target: 'database.password' },
  'database.pool_size': { target: 'database.pool_size' },
  'database.ssl': { target: 'database.ssl' },
  'cache.type': {
    target: 'cache.type',
    transform: oneOf({ redis: 'redis', inmemory: 'memory', memory: 'memory' }, 'cache'),
  },
  'cache.address': { target: 'cache.address' },
  'cache.password': { target: 'cache.password' },
  'cache.ttl_seconds': { target: 'cache.ttl_seconds' },
  'cache.fallback_to_memory': { target: 'cache.fallback_to_memory' },
};

/** Keys that describe the legacy file itself and are consumed, not migrated. */
const METADATA = new Set(['version', 'mode']);

/** Why some well-known legacy keys have no equivalent, for the report. */
const REASONS: Readonly<Record<string, string>> = {
  'dwcp.rollout_percentage': 'DWCP v3 is always on; there is no rollout percentage',
  'monitoring.prometheus.port': 'metrics are served on api.rest_port at monitoring.metrics.path',
  'monitoring.jaeger.endpoint':
    'Jaeger collector endpoints are not OTLP; set monitoring.tracing.endpoint to an OTLP/HTTP URL',
};

function leavesOf(v: unknown, prefix = ''): { path: string; value: unknown }[] {
  if (isPlainObject(v) && Object.keys(v).length) {
    return Object.entries(v).flatMap(([k, child]) => leavesOf(child, prefix ? `${prefix}.${k}` : k));
  }
  return [{ path: prefix, value: v }];
}

function modeOf(f: LegacyFile): NetworkMode | undefined {
  const declared = isPlainObject(f.value) ? f.value.mode : undefined;
  if (typeof declared === 'string' && (NETWORK_MODES as readonly string[]).includes(declared)) {
    return declared as NetworkMode;
  }
  const base = f.file.split(/[\\/]/).pop() ?? '';
  return NETWORK_MODES.find((m) => base.includes(m));
}

function setIn(tree: Record<string, unknown>, path: string, value: unknown): void {
  const segs = path.split('.');
  let node = tree;
  for (const s of segs.slice(0, -1)) {
    if (!isPlainObject(node[s])) node[s] = {};
    node = node[s] as Record<string, unknown>;
  }
  node[segs[segs.length - 1]!] = value;
}

/** Merges legacy files, in the order given, into one unified tree. */
export function migrateLegacy(files: readonly LegacyFile[]): MigrationResult {
  const config: Record<string, unknown> = {};
  const unmapped: UnmappedKey[] = [];
  const conflicts: MigrationConflict[] = [];
  const mapped: { file: string; path: string; target: string }[] = [];
  const modes = new Map<string, NetworkMode | undefined>();
  const setBy = new Map<string, { value: unknown; file: string }>();

  const assign = (f: LegacyFile, path: string, target: string, value: unknown, combine: Combine) => {
    const prev = setBy.get(target);
    if (prev && combine === 'any') {
      const merged = prev.value === true || value === true ? true : prev.value;
      setBy.set(target, { value: merged, file: prev.file });
      setIn(config, target, merged);
      return;
    }
    if (prev) {
      if (JSON.stringify(prev.value) !== JSON.stringify(value)) {
        conflicts.push({ file: f.file, path, value, target, kept: prev.value, keptFrom: prev.file });
      }
      return;
    }
    setBy.set(target, { value, file: f.file });
    setIn(config, target, value);
  };

  for (const f of files) {
    const mode = modeOf(f);
    modes.set(f.file, mode);
    if (!isPlainObject(f.value)) {
      unmapped.push({ file: f.file, path: '', value: f.value, reason: 'not a mapping' });
      continue;
    }
    for (const { path, value } of leavesOf(f.value)) {
      if (METADATA.has(path)) continue;
      const rule = LEGACY_RULES[path];
      if (!rule) {
        unmapped.push({
          file: f.file,
          path,
          value,
          reason: REASONS[path] ?? 'no equivalent in the unified configuration',
        });
        continue;
      }
      if (rule.target.includes('{mode}') && !mode) {
        unmapped.push({ file: f.file, path, value, reason: 'per-mode setting, but the file names no mode' });
        continue;
      }
      const target = rule.target.replace('{mode}', mode ?? '');
      const t = rule.transform ? rule.transform(value) : ({ ok: true, value } as const);
      if (!t.ok) {
        unmapped.push({ file: f.file, path, value, reason: t.reason });
        continue;
      }
      assign(f, path, target, t.value, rule.combine ?? 'first');
      for (const [k, v] of Object.entries(rule.also ?? {})) assign(f, path, k, v, 'first');
      mapped.push({ file: f.file, path, target });
    }
  }
  const distinct = new Set([...modes.values()].filter((m) => m !== undefined));
  const system = isPlainObject(config.system) ? config.system : {};
  config.system = { ...system, mode: distinct.size === 1 ? [...distinct][0]! : 'auto' };
  return { config, unmapped, conflicts, modes, mapped };
}

/** The lines of the "not migrated" report (also written as a trailing comment block). */
export function migrationReport(r: MigrationResult): string[] {
  const lines: string[] = [];
  if (r.unmapped.length) {
    lines.push(
      `${r.unmapped.length} legacy key${r.unmapped.length > 1 ? 's' : ''} not migrated (no equivalent):`,
    );
    for (const u of r.unmapped)
      lines.push(`  ${u.file}: ${u.path} = ${JSON.stringify(u.value)} (${u.reason})`);
  }
  if (r.conflicts.length) {
    lines.push(
      `${r.conflicts.length} conflicting value${r.conflicts.length > 1 ? 's' : ''} (first file wins):`,
    );
    for (const c of r.conflicts) {
      lines.push(
        `  ${c.file}: ${c.path} = ${JSON.stringify(c.value)} -> ${c.target} kept ${JSON.stringify(c.kept)} from ${c.keptFrom}`,
      );
    }
  }
  return lines;
}

/**
 * Migrates and validates: the unified tree is validated as it would load (defaults filled,
 * `${VAR:default}` expanded); keys still holding an unset `${VAR}` are checked at load time instead.
 * Throws a ConfigError when the result would not load.
 */
export function migrateToYaml(
  legacy: readonly LegacyFile[],
  env: Readonly<Record<string, string | undefined>>,
): { yaml: string; report: string[]; result: MigrationResult } {
  const result = migrateLegacy(legacy);
  const report = migrationReport(result);
  const exp = expandValues(result.config, env);
  const tree = coerceTree(exp.value).value;
  for (const m of exp.missing) {
    dropPath(tree, m.path);
    report.push(`${m.path} needs environment variable ${m.variable} when the file is loaded`);
  }
  const check = validateConfig(
    tree,
    (p) => `migrated from ${result.mapped.find((m) => m.target === p)?.file ?? '?'}`,
  );
  if (!check.ok) {
    throw new ConfigError(
      `the migrated configuration is invalid:\n  ${check.issues.map(formatIssue).join('\n  ')}`,
      check.issues,
      { hint: 'fix the legacy values named above, or edit the output by hand' },
    );
  }
  const modes = [...result.modes].map(([f, m]) => `${f} (${m ?? 'mode unknown'})`).join(', ');
  const header = [
    ' NovaCron unified configuration, produced by `novacron config migrate` from:',
    ` ${modes}`,
    ' Keys not written here take their defaults; see config/novacron.yaml for every key.',
  ].join('\n');
  const trailer = report.length ? ['', ...report.map((l) => ` ${l}`)].join('\n') : undefined;
  return { yaml: configToYaml(result.config, { header, ...(trailer ? { trailer } : {}) }), report, result };
}

function dropPath(tree: Record<string, unknown>, path: string): void {
  const segs = path.split('.');
  let node: unknown = tree;
  for (const s of segs.slice(0, -1)) node = (node as Record<string, unknown> | undefined)?.[s];
  if (typeof node === 'object' && node !== null)
    delete (node as Record<string, unknown>)[segs[segs.length - 1]!];
}
