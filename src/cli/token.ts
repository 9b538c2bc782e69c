// `novacron token create`: signs an API token with the node's key (security.jwt_secret, else
// `<data_dir>/jwt.key`, written by the node on first start) and prints it on stdout.
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../config/loader.js';
import { NovaCronError, ErrorCode } from '../errors.js';
import { JWT_KEY_FILE } from '../security/key-store.js';
import { TOKEN_SCOPES, TokenAuthority, isTokenScope, parseTtl } from '../security/tokens.js';
import { action, output } from './run.js';

interface CreateFlags {
  scope: string;
  ttl?: string;
  dataDir?: string;
  config?: string;
  json?: boolean;
}

export function registerTokenCommand(program: Command): void {
  const token = program.command('token').description('API tokens (signed JWTs with scope admin or read)');
  token
    .command('create')
    .description('Create a token with the node signing key and print it')
    .option('--scope <scope>', `scope: ${TOKEN_SCOPES.join(' or ')} (read may only GET)`, 'read')
    .option('--ttl <duration>', 'lifetime, e.g. 30m, 24h, 7d (default: security.token_ttl_hours)')
    .option('-d, --data-dir <dir>', 'data directory of the node (overrides system.data_dir)')
    .option('-c, --config <file>', 'configuration file of the node')
    .option('--json', 'print {token, scope, expiresAt} as JSON')
    .action(
      action(async (flags: CreateFlags) => {
        if (!isTokenScope(flags.scope)) {
          throw new NovaCronError(ErrorCode.Validation, `unknown scope "${flags.scope}"`, {
            key: 'scope',
            hint: `use one of: ${TOKEN_SCOPES.join(', ')}`,
          });
        }
        const flagOverrides: Record<string, unknown> = {};
        if (flags.dataDir !== undefined) flagOverrides['system.data_dir'] = flags.dataDir;
        let { config } = await loadConfig({ file: flags.config, flags: flagOverrides });
        if (config.security.vault_address !== '' && config.security.jwt_secret === '') {
          const { resolveVaultSecrets } = await import('../security/vault.js');
          config = (await resolveVaultSecrets(config)).config;
        }
        const ttlSeconds =
          flags.ttl !== undefined ? parseTtl(flags.ttl) : config.security.token_ttl_hours * 3600;
        const key = await signingKey(config.security.jwt_secret, config.system.data_dir);
        const authority = new TokenAuthority(key);
        const tokenText = await authority.issue({
          scope: flags.scope,
          ttlSeconds,
          subject: `cli-${flags.scope}`,
        });
        const claims = await authority.verify(tokenText);
        const expiresAt = claims.expiresAt === null ? null : new Date(claims.expiresAt * 1000).toISOString();
        output(
          { token: tokenText, scope: claims.scope, expiresAt },
          flags.json === true,
          () => `${tokenText}\n`,
        );
      }),
    );
}

async function signingKey(jwtSecret: string, dataDir: string): Promise<Uint8Array> {
  if (jwtSecret !== '') return new TextEncoder().encode(jwtSecret);
  const path = join(dataDir, JWT_KEY_FILE);
  try {
    return Buffer.from((await readFile(path, 'utf8')).trim(), 'base64url');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new NovaCronError(
      ErrorCode.NotFound,
      code === 'ENOENT'
        ? `no signing key in ${dataDir}: ${path} does not exist`
        : `cannot read the signing key ${path}: ${code ?? (err as Error).message}`,
      {
        key: 'system.data_dir',
        hint: 'start the node once with this data dir (it writes jwt.key), or pass --data-dir/--config of the node',
      },
    );
  }
}
