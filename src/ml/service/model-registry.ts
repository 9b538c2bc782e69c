// Holds the models the service answers with, reloads them from a directory, and swaps them atomically.
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import {
  DEFAULT_MODELS_DIR,
  scanModelsDir,
  type BandwidthModelFile,
  type LifetimeModelFile,
  type LoadedModel,
} from '../models/model-file.js';
import { ValidationError } from '../../errors.js';

/** The models in use at one instant. A request reads one snapshot and keeps it to the end. */
export interface ModelSet {
  readonly bandwidth: LoadedModel<BandwidthModelFile>;
  readonly lifetime: LoadedModel<LifetimeModelFile>;
}

export interface ReloadResult {
  readonly changed: boolean;
  readonly models: ModelSet;
  readonly rejected: readonly { path: string; reason: string }[];
}

/**
 * Loads the newest valid model of each kind from `dir`, falling back to the shipped defaults for a
 * kind the directory lacks. `reload()` builds a complete new ModelSet first and then replaces the
 * reference in one assignment, so in-flight requests finish on the set they started with and no
 * request ever sees a half-loaded model. Emits `reload` (ReloadResult) and `error` is never
 * emitted: a bad file is reported in `rejected` and the previous model stays.
 */
export class ModelRegistry extends EventEmitter<{ reload: [ReloadResult] }> {
  #current: ModelSet;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly dir: string;

  constructor(dir: string = DEFAULT_MODELS_DIR) {
    super();
    this.dir = dir;
    const first = this.#load(undefined);
    this.#current = first.models;
  }

  get current(): ModelSet {
    return this.#current;
  }

  /** Rescans the directory now; returns what changed. */
  reload(): ReloadResult {
    const res = this.#load(this.#current);
    const changed =
      res.models.bandwidth.file.version !== this.#current.bandwidth.file.version ||
      res.models.lifetime.file.version !== this.#current.lifetime.file.version;
    this.#current = res.models;
    const out = { ...res, changed };
    this.emit('reload', out);
    return out;
  }

  /** Watches the directory and reloads (debounced by `debounceMs`) when a file appears or changes. */
  watch(debounceMs = 150): void {
    if (this.#watcher) return;
    this.#watcher = watch(this.dir, () => {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.reload();
      }, debounceMs);
    });
    this.#watcher.on('error', () => this.unwatch());
  }

  unwatch(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #load(previous: ModelSet | undefined): Omit<ReloadResult, 'changed'> {
    const found = scanModelsDir(this.dir);
    let bandwidth = found.bandwidth ?? previous?.bandwidth;
    let lifetime = found.lifetime ?? previous?.lifetime;
    if ((!bandwidth || !lifetime) && this.dir !== DEFAULT_MODELS_DIR) {
      const defaults = scanModelsDir(DEFAULT_MODELS_DIR);
      bandwidth ??= defaults.bandwidth;
      lifetime ??= defaults.lifetime;
    }
    if (!bandwidth || !lifetime) {
      throw new ValidationError(`no usable ${!bandwidth ? 'bandwidth' : 'lifetime'} model in ${this.dir}`, {
        key: this.dir,
        hint: 'train one with `novacron ml train …` or point --models at a directory holding model files',
        details: found.rejected,
      });
    }
    return { models: { bandwidth, lifetime }, rejected: found.rejected };
  }
}
