// Pre-init component "security": the token signing key, the admin token in the data dir (its path
// logged, never the token), and the TLS material when api.host is not loopback or TLS is forced.
import type { Logger } from 'pino';
import type { Component } from '../boot/component.js';
import type { NovaCronConfig } from '../config/schema.js';
import { requireService } from '../boot/services.js';
import { ensureAdminToken, loadSigningKey } from '../security/key-store.js';
import { loadTlsMaterial, tlsRequired, type TlsMaterial } from '../security/tls.js';
import { TokenAuthority } from '../security/tokens.js';
import type {} from '../security/index.js';

/**
 * Fills empty secret keys (database.password, cache.password, security.jwt_secret,
 * cluster.join_token) from Vault, in place, so every component that depends on "security" reads
 * them from its config as if they had been configured. Logs the key names, never the values.
 */
async function fillFromVault(config: NovaCronConfig, logger: Logger): Promise<void> {
  const { resolveVaultSecrets, VAULT_SECRET_KEYS } = await import('../security/vault.js');
  const { config: filledConfig, filled } = await resolveVaultSecrets(config);
  for (const key of filled) {
    const [section, leaf] = VAULT_SECRET_KEYS[key as keyof typeof VAULT_SECRET_KEYS];
    (config[section] as Record<string, unknown>)[leaf] = (filledConfig[section] as Record<string, unknown>)[
      leaf
    ];
  }
  logger.info({ keys: filled }, `read ${filled.length} secret(s) from Vault: ${filled.join(', ') || 'none'}`);
}

export function securityComponent(): Component {
  let detail = 'not started';
  let ready = false;
  return {
    name: 'security',
    phase: 'pre',
    dependsOn: ['data-dir'],
    critical: true,
    async start(ctx) {
      const dataDir = requireService(ctx.services, 'dataDir');
      if (ctx.config.security.vault_address !== '') await fillFromVault(ctx.config, ctx.logger);
      const { security, api } = ctx.config;
      const useTls = tlsRequired(security.tls.enabled, api.host);
      const [signing, tls] = await Promise.all([
        loadSigningKey(dataDir, security.jwt_secret),
        useTls ? loadTlsMaterial(security.tls, dataDir, api.host) : Promise.resolve<TlsMaterial | null>(null),
      ]);
      const tokens = new TokenAuthority(signing.key);
      const admin = await ensureAdminToken(dataDir, tokens);
      if (signing.created)
        ctx.logger.info({ dir: dataDir }, 'generated a token signing key (jwt.key) in the data dir');
      if (admin.created) {
        ctx.logger.info({ path: admin.path }, `admin token written to ${admin.path} (mode 0600)`);
      }
      if (tls?.generated) {
        ctx.logger.info(
          { ca: tls.caFile, cert: tls.certFile },
          `generated a TLS CA and server certificate; clients trust ${tls.caFile ?? tls.certFile}`,
        );
      }
      ctx.services.security = { tokens, adminTokenPath: admin.path, tls };
      detail = `tokens (key from ${signing.source}), admin token ${admin.path}, TLS ${
        tls ? `on (${tls.certFile})` : 'off (loopback)'
      }`;
      ready = true;
    },
    health: () => (ready ? { status: 'up', detail } : { status: 'down', detail }),
  };
}
