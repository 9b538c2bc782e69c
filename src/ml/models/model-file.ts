// Versioned model files: one JSON document per trained model, with its kind, version, provenance and parameters.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../errors.js';
import { validateBandwidthParams, type BandwidthModelParams } from './bandwidth-model.js';
import { validateLifetimeParams, type LifetimeModelParams } from './lifetime-model.js';

export const MODEL_FORMAT = 'novacron-ml-model';
export const MODEL_FORMAT_VERSION = 1;

export const ModelKind = { Bandwidth: 'bandwidth', Lifetime: 'lifetime' } as const;
export type ModelKind = (typeof ModelKind)[keyof typeof ModelKind];

/** Bandwidth parameters per trace family (profile); requests pick one by `network_type`. */
export interface BandwidthProfiles {
  readonly defaultProfile: string;
  readonly profiles: Readonly<Record<string, BandwidthModelParams>>;
}

interface ModelFileBase<K extends ModelKind, P> {
  readonly format: typeof MODEL_FORMAT;
  readonly formatVersion: typeof MODEL_FORMAT_VERSION;
  readonly kind: K;
  /** `<kind>-<YYYYMMDD>-<first 10 hex of the SHA-256 of params>`: equal parameters, equal version. */
  readonly version: string;
  readonly createdAt: string;
  /** What it was trained on (directories, tables) and how it was evaluated, for operators. */
  readonly trainedOn: readonly string[];
  readonly notes?: string;
  /** Evaluation figures computed at training time (free-form, shown by `ml eval`). */
  readonly evaluation?: unknown;
  readonly params: P;
}

export type BandwidthModelFile = ModelFileBase<'bandwidth', BandwidthProfiles>;
export type LifetimeModelFile = ModelFileBase<'lifetime', LifetimeModelParams>;
export type ModelFile = BandwidthModelFile | LifetimeModelFile;

/** The version string of parameters trained at `createdAt`. */
export function modelVersion(kind: ModelKind, params: unknown, createdAt: Date): string {
  const hash = createHash('sha256').update(JSON.stringify(params)).digest('hex').slice(0, 10);
  const day = createdAt.toISOString().slice(0, 10).replace(/-/g, '');
  return `${kind}-${day}-${hash}`;
}

/** Wraps trained parameters into a model file document. */
export function makeModelFile<K extends ModelKind>(
  kind: K,
  params: K extends 'bandwidth' ? BandwidthProfiles : LifetimeModelParams,
  meta: { trainedOn: readonly string[]; notes?: string; evaluation?: unknown; now?: Date },
): K extends 'bandwidth' ? BandwidthModelFile : LifetimeModelFile {
  const now = meta.now ?? new Date();
  const file = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    kind,
    version: modelVersion(kind, params, now),
    createdAt: now.toISOString(),
    trainedOn: [...meta.trainedOn],
    ...(meta.notes === undefined ? {} : { notes: meta.notes }),
    ...(meta.evaluation === undefined ? {} : { evaluation: meta.evaluation }),
    params,
  };
  return file as unknown as K extends 'bandwidth' ? BandwidthModelFile : LifetimeModelFile;
}

/** Parses and validates a model file; throws ValidationError naming `source` on anything malformed. */
export function parseModelFile(text: string, source: string): ModelFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`${source}: not JSON`, { key: source, cause: err });
  }
  const d = doc as Partial<ModelFileBase<ModelKind, unknown>> | null;
  if (!d || d.format !== MODEL_FORMAT)
    throw new ValidationError(`${source}: not a ${MODEL_FORMAT} file`, { key: source });
  if (d.formatVersion !== MODEL_FORMAT_VERSION) {
    throw new ValidationError(`${source}: format version ${String(d.formatVersion)} is not supported`, {
      key: source,
      hint: `this build reads format version ${MODEL_FORMAT_VERSION}; retrain with \`novacron ml train\``,
    });
  }
  if (typeof d.version !== 'string' || d.version === '' || typeof d.createdAt !== 'string') {
    throw new ValidationError(`${source}: missing version or createdAt`, { key: source });
  }
  try {
    if (d.kind === 'bandwidth') {
      const p = d.params as Partial<BandwidthProfiles> | null;
      if (!p || typeof p.defaultProfile !== 'string' || !p.profiles || !(p.defaultProfile in p.profiles)) {
        throw new ValidationError('bandwidth params need profiles and a defaultProfile among them');
      }
      for (const v of Object.values(p.profiles)) validateBandwidthParams(v);
    } else if (d.kind === 'lifetime') {
      validateLifetimeParams(d.params);
    } else {
      throw new ValidationError(`unknown model kind ${String(d.kind)}`);
    }
  } catch (err) {
    throw new ValidationError(`${source}: ${(err as Error).message}`, { key: source, cause: err });
  }
  return d as ModelFile;
}

/** Reads one model file from disk. */
export function readModelFile(path: string): ModelFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError(`cannot read model file ${path}`, { key: path, cause: err });
  }
  return parseModelFile(text, path);
}

/** The model files shipped in the repository (models/ at its root), which work out of the box. */
export const DEFAULT_MODELS_DIR = fileURLToPath(new URL('../../../models/', import.meta.url));

/** A model file found in a directory, with the path it came from. */
export interface LoadedModel<F extends ModelFile = ModelFile> {
  readonly file: F;
  readonly path: string;
}

/**
 * Scans `dir` (flat, `*.json`) and returns the newest valid model of each kind by `createdAt`
 * (then by file name). Invalid files are reported in `rejected`, not thrown: a bad file dropped
 * into the directory must not take the service down.
 */
export function scanModelsDir(dir: string): {
  bandwidth?: LoadedModel<BandwidthModelFile>;
  lifetime?: LoadedModel<LifetimeModelFile>;
  rejected: { path: string; reason: string }[];
} {
  const rejected: { path: string; reason: string }[] = [];
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith('.json'))
      .sort();
  } catch (err) {
    throw new ValidationError(`cannot read models directory ${dir}`, { key: dir, cause: err });
  }
  let bandwidth: LoadedModel<BandwidthModelFile> | undefined;
  let lifetime: LoadedModel<LifetimeModelFile> | undefined;
  for (const name of names) {
    const path = join(dir, name);
    try {
      if (!statSync(path).isFile()) continue;
      const file = readModelFile(path);
      if (file.kind === 'bandwidth') {
        if (!bandwidth || file.createdAt >= bandwidth.file.createdAt) bandwidth = { file, path };
      } else if (!lifetime || file.createdAt >= lifetime.file.createdAt) {
        lifetime = { file, path };
      }
    } catch (err) {
      rejected.push({ path, reason: (err as Error).message });
    }
  }
  return {
    ...(bandwidth === undefined ? {} : { bandwidth }),
    ...(lifetime === undefined ? {} : { lifetime }),
    rejected,
  };
}
