// The built-in defaults: an empty configuration file yields exactly this working single node.
import { Value } from '@sinclair/typebox/value';
import { ConfigSchema, type NovaCronConfig } from './schema.js';

/** A fresh copy of the default configuration (safe to mutate). */
export function defaultConfig(): NovaCronConfig {
  return Value.Default(ConfigSchema, {}) as NovaCronConfig;
}
