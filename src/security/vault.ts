// Optional secret source: HashiCorp Vault's KV v2 engine over its HTTP API (plain fetch; loaded
// only when security.vault_address is set). Secrets read there fill the configuration's secret
// keys before any component starts. Tested against a minimal HTTP server speaking the KV v2 read
// API, not against a real Vault (none can be installed on the build machine); see docs/security.md.
import { NovaCronError, ErrorCode } from '../errors.js';
import type { NovaCronConfig } from '../config/schema.js';

export interface VaultSource {
  readonly address: string;
  readonly token: string;
  readonly mount: string;
  readonly path: string;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

/**
 * The config keys a Vault secret may fill, by the field name in the Vault secret. A field may be
 * named by its dotted config key (`database.password`) or by its short name (`jwt_secret`).
 */
export const VAULT_SECRET_KEYS = {
  'database.password': ['database', 'password'],
  'cache.password': ['cache', 'password'],
  'security.jwt_secret': ['security', 'jwt_secret'],
  'cluster.join_token': ['cluster', 'join_token'],
} as const;

const SHORT_NAMES: Record<string, keyof typeof VAULT_SECRET_KEYS> = {
  password: 'database.password',
  database_password: 'database.password',
  redis_password: 'cache.password',
  cache_password: 'cache.password',
  jwt_secret: 'security.jwt_secret',
  join_token: 'cluster.join_token',
};

/** Reads one KV v2 secret: GET {address}/v1/{mount}/data/{path}; returns its string fields. */
export async function readVaultSecret(source: VaultSource): Promise<Record<string, string>> {
  const url = `${source.address.replace(/\/+$/, '')}/v1/${encodeURIComponent(source.mount)}/data/${source.path
    .split('/')
    .map(encodeURIComponent)
    .join('/')}`;
  const where = `${source.address} (${source.mount}/${source.path})`;
  const doFetch = source.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, {
      headers: { 'X-Vault-Token': source.token, accept: 'application/json' },
      signal: AbortSignal.timeout(source.timeoutMs ?? 5000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new NovaCronError(ErrorCode.Unavailable, `vault unavailable: ${where}: ${cause}`, {
      key: 'security.vault_address',
      retryable: true,
      hint: 'check security.vault_address and that Vault is unsealed',
    });
  }
  if (res.status === 403 || res.status === 401) {
    throw new NovaCronError(
      ErrorCode.PermissionDenied,
      `vault refused the token for ${where} (HTTP ${res.status})`,
      {
        key: 'security.vault_token',
        hint: 'the Vault token needs read on this KV v2 path',
      },
    );
  }
  if (res.status === 404) {
    throw new NovaCronError(ErrorCode.NotFound, `vault has no secret at ${where}`, {
      key: 'security.vault_path',
      hint: 'write it with `vault kv put <mount>/<path> jwt_secret=… database.password=…`',
    });
  }
  if (!res.ok) {
    throw new NovaCronError(ErrorCode.Unavailable, `vault answered HTTP ${res.status} for ${where}`, {
      key: 'security.vault_address',
      retryable: res.status >= 500,
    });
  }
  const body = (await res.json().catch(() => null)) as { data?: { data?: unknown } } | null;
  const data = body?.data?.data;
  if (data === null || typeof data !== 'object') {
    throw new NovaCronError(ErrorCode.Protocol, `vault answer for ${where} is not a KV v2 secret`, {
      key: 'security.vault_mount',
      hint: 'the mount must be a KV version 2 engine',
    });
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (typeof v === 'string') out[k] = v;
  }
  return out;
}

/**
 * Returns a copy of `config` with the secret keys filled from `secret` (only keys that are empty
 * in the config: an explicit value wins), and the list of keys filled. Pure.
 */
export function applyVaultSecrets(
  config: NovaCronConfig,
  secret: Readonly<Record<string, string>>,
): { config: NovaCronConfig; filled: string[] } {
  const copy = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  const filled: string[] = [];
  for (const [field, value] of Object.entries(secret)) {
    const key = field in VAULT_SECRET_KEYS ? (field as keyof typeof VAULT_SECRET_KEYS) : SHORT_NAMES[field];
    if (key === undefined) continue;
    const [section, leaf] = VAULT_SECRET_KEYS[key];
    const sec = copy[section];
    if (sec && sec[leaf] === '' && !filled.includes(key)) {
      sec[leaf] = value;
      filled.push(key);
    }
  }
  return { config: copy as unknown as NovaCronConfig, filled };
}

/** Reads the configured Vault secret and fills the config's secrets; the config itself when Vault is off. */
export async function resolveVaultSecrets(
  config: NovaCronConfig,
  fetchImpl?: typeof fetch,
): Promise<{ config: NovaCronConfig; filled: string[] }> {
  const s = config.security;
  if (s.vault_address === '') return { config, filled: [] };
  const secret = await readVaultSecret({
    address: s.vault_address,
    token: s.vault_token,
    mount: s.vault_mount,
    path: s.vault_path,
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  });
  return applyVaultSecrets(config, secret);
}
