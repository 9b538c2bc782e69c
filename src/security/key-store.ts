// Token key material on disk: the HMAC signing key (`<data_dir>/jwt.key`, unless
// security.jwt_secret is set) and the admin token (`<data_dir>/admin.token`), both mode 0600 and
// written atomically, so a crash never leaves a half-written secret behind.
import { randomBytes } from 'node:crypto';
import { chmod, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NovaCronError, ErrorCode } from '../errors.js';
import type { TokenAuthority } from './tokens.js';

export const JWT_KEY_FILE = 'jwt.key';
export const ADMIN_TOKEN_FILE = 'admin.token';

export function adminTokenPath(dataDir: string): string {
  return join(dataDir, ADMIN_TOKEN_FILE);
}

/** Writes `content` to `path` with mode 0600 via a temporary file and a rename. */
export async function writeSecretFile(path: string, content: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(tmp, 0o600);
  await rename(tmp, path).catch(async (err: unknown) => {
    await rm(tmp, { force: true });
    throw err;
  });
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Tightens a secret file readable by group or others to 0600; returns true when it had to. */
export async function tightenMode(path: string): Promise<boolean> {
  const s = await stat(path);
  if ((s.mode & 0o077) === 0) return false;
  await chmod(path, 0o600);
  return true;
}

export interface SigningKey {
  readonly key: Uint8Array;
  /** `config` when security.jwt_secret is set, else the file it was read from or written to. */
  readonly source: 'config' | 'file';
  readonly created: boolean;
}

/**
 * The token signing key: security.jwt_secret when set (any string of 32+ bytes), else
 * `<data_dir>/jwt.key`, created with 32 random bytes on first start.
 */
export async function loadSigningKey(dataDir: string, configuredSecret: string): Promise<SigningKey> {
  if (configuredSecret !== '') {
    return { key: new TextEncoder().encode(configuredSecret), source: 'config', created: false };
  }
  const path = join(dataDir, JWT_KEY_FILE);
  const existing = await readIfExists(path);
  if (existing !== null) {
    const key = Buffer.from(existing.trim(), 'base64url');
    if (key.length < 32) {
      throw new NovaCronError(ErrorCode.Integrity, `the token signing key ${path} is damaged`, {
        key: 'security.jwt_secret',
        hint: `remove ${path} (every token issued so far becomes invalid) and restart`,
      });
    }
    await tightenMode(path);
    return { key, source: 'file', created: false };
  }
  const key = randomBytes(32);
  await writeSecretFile(path, key.toString('base64url') + '\n');
  return { key, source: 'file', created: true };
}

/**
 * Makes sure `<data_dir>/admin.token` holds a valid admin token for `authority`: kept when it
 * verifies, (re)written otherwise (first start, or the signing key changed). Idempotent.
 */
export async function ensureAdminToken(
  dataDir: string,
  authority: TokenAuthority,
): Promise<{ path: string; created: boolean }> {
  const path = adminTokenPath(dataDir);
  const existing = (await readIfExists(path))?.trim();
  if (existing) {
    const valid = await authority.verify(existing).then(
      (c) => c.scope === 'admin',
      () => false,
    );
    if (valid) {
      await tightenMode(path);
      return { path, created: false };
    }
  }
  const token = await authority.issue({ scope: 'admin', subject: 'admin' });
  await writeSecretFile(path, token + '\n');
  return { path, created: true };
}
