// Public API of the configuration subsystem: loading, validation, rendering, mode detection and
// legacy migration. Other subsystems import from here (types from ./schema.js).
export {
  loadConfig,
  resolveConfig,
  locate,
  mergeLayers,
  type LoadOptions,
  type LoadedConfig,
  type ConfigSource,
} from './loader.js';
export { parseYamlConfig, type ParsedYaml } from './yaml-file.js';
export { flagLayer, envLayer, parseSetFlags, NON_CONFIG_ENV, type ConfigOverrides } from './overrides.js';
export { validateConfig, formatIssue, type ValidationResult } from './validate.js';
export { expandString, expandValues, type MissingVariable } from './expand.js';
export {
  redactSecrets,
  secretPaths,
  configToYaml,
  orderBySchema,
  REDACTED,
  type YamlOptions,
} from './render.js';
export { defaultConfig } from './defaults.js';
export { envNameFor, leaves, describeAllowed } from './schema-walk.js';
export {
  detectNetworkMode,
  classifyRtt,
  classifyBandwidth,
  DATACENTER_MAX_RTT_MS,
  INTERNET_MIN_RTT_MS,
  DATACENTER_MIN_BANDWIDTH_MBPS,
  INTERNET_MAX_BANDWIDTH_MBPS,
  type ModeDecision,
  type ModeProbes,
  type PeerRtt,
} from './mode-detect.js';
export {
  gatherModeProbes,
  probeRdma,
  probePeerRtt,
  tcpConnectTime,
  peerAddress,
  type GatherOptions,
} from './mode-probe.js';
export {
  ModeDetector,
  detectMode,
  type ModeDetectorOptions,
  type ModeChangeListener,
} from './mode-detector.js';
export {
  migrateLegacy,
  migrateToYaml,
  migrationReport,
  LEGACY_RULES,
  type LegacyFile,
  type MigrationResult,
  type UnmappedKey,
  type MigrationConflict,
} from './migrate.js';
export type { NovaCronConfig, NetworkMode, ModeSetting } from './schema.js';
