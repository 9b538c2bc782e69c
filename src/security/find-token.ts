// How CLI commands find the token they call the API with, without the operator pasting it:
// `--token`, else NOVACRON_TOKEN, else the admin token the node wrote into its data directory.
import { readFile } from 'node:fs/promises';
import { NovaCronError, ErrorCode } from '../errors.js';
import type { NovaCronConfig } from '../config/schema.js';
import { adminTokenPath } from './key-store.js';

export interface FoundToken {
  readonly token: string;
  /** Where it came from, for error messages: `--token`, `NOVACRON_TOKEN` or the file path. */
  readonly source: string;
}

/**
 * Finds the API token for a CLI command. Order: `options.flag` (the command's `--token`), then
 * `NOVACRON_TOKEN` in `options.env` (default `process.env`), then `<system.data_dir>/admin.token`.
 * Throws NovaCronError `unauthenticated` naming the places it looked when there is none.
 * @example
 *   const { token } = await findAdminToken(config, { flag: opts.token });
 *   fetch(url, { headers: { authorization: `Bearer ${token}` } });
 */
export async function findAdminToken(
  config: Pick<NovaCronConfig, 'system'>,
  options: { flag?: string | undefined; env?: Readonly<Record<string, string | undefined>> } = {},
): Promise<FoundToken> {
  if (options.flag) return { token: options.flag.trim(), source: '--token' };
  const env = options.env ?? process.env;
  const fromEnv = env.NOVACRON_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: 'NOVACRON_TOKEN' };
  const path = adminTokenPath(config.system.data_dir);
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (token) return { token, source: path };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') {
      throw new NovaCronError(ErrorCode.Unauthenticated, `cannot read the admin token ${path}: ${code}`, {
        hint: 'run as the user that runs the node, or pass --token / NOVACRON_TOKEN',
      });
    }
  }
  throw new NovaCronError(ErrorCode.Unauthenticated, `no API token: ${path} does not exist`, {
    hint: 'pass --token or set NOVACRON_TOKEN, or point --data-dir/--config at the node (it writes admin.token on first start)',
  });
}
