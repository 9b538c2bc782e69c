// How a node's DWCP streams authenticate, from its configuration: `dwcp.auth` picks the join token
// (cluster.join_token), node certificates signed by the cluster CA (security.tls.cert_file,
// key_file, ca_file), or either. One place for the CLI and the migration manager.
import { ConfigError } from '../../errors.js';
import type { NovaCronConfig } from '../../config/schema.js';
import { loadCertificateAuth } from '../../security/peer-certs.js';
import type { ConnectionSecurity } from './connection.js';

export type DwcpAuthSetting = NovaCronConfig['dwcp']['auth'];
export const DWCP_AUTH_SETTINGS: readonly DwcpAuthSetting[] = ['token', 'ca', 'token_or_ca'];

export interface DwcpSecurityOptions {
  /** Seal frames with AES-256-GCM. */
  readonly encrypt: boolean;
  /** Overrides `dwcp.auth`. */
  readonly auth?: DwcpAuthSetting;
  /** Override the certificate files (CLI flags); each labelled in errors by its flag. */
  readonly files?: {
    readonly cert?: { path: string; label: string };
    readonly key?: { path: string; label: string };
    readonly ca?: { path: string; label: string };
  };
  /** The peer certificate must name one of these (see HandshakeAuth.peerNames). */
  readonly peerNames?: readonly string[];
}

/**
 * Builds the ConnectionSecurity a node uses. `token`: cluster.join_token must be set. `ca`: the
 * certificate, key and CA files must be set and readable (the key must match the certificate).
 * `token_or_ca`: whichever is configured, at least one of them.
 */
export async function dwcpSecurity(
  config: NovaCronConfig,
  o: DwcpSecurityOptions,
): Promise<ConnectionSecurity> {
  const auth = o.auth ?? config.dwcp.auth;
  const tls = config.security.tls;
  const file = (which: 'cert' | 'key' | 'ca') =>
    o.files?.[which] ?? { path: tls[`${which}_file`], label: `security.tls.${which}_file` };
  const cert = file('cert');
  const key = file('key');
  const ca = file('ca');
  const token = config.cluster.join_token;
  const haveFiles = cert.path !== '' || key.path !== '' || ca.path !== '';
  const useToken = auth === 'token' || (auth === 'token_or_ca' && token !== '');
  const useCa = auth === 'ca' || (auth === 'token_or_ca' && haveFiles);
  if (useToken && token === '')
    throw new ConfigError(
      'cluster.join_token is empty: DWCP streams are authenticated by it (dwcp.auth: token)',
      [],
      {
        key: 'cluster.join_token',
        hint: 'set it on both hosts (config or NOVACRON_CLUSTER__JOIN_TOKEN), or use dwcp.auth: ca with node certificates',
      },
    );
  if (!useToken && !useCa)
    throw new ConfigError(
      'dwcp.auth is token_or_ca but neither cluster.join_token nor certificates (security.tls.cert_file, key_file, ca_file) are set',
      [],
      { key: 'dwcp.auth' },
    );
  const certificate = useCa
    ? await loadCertificateAuth(
        { cert: cert.path, key: key.path, ca: ca.path },
        { cert: cert.label, key: key.label, ca: ca.label },
      )
    : undefined;
  return {
    encrypt: o.encrypt,
    ...(useToken ? { token } : {}),
    ...(certificate ? { certificate } : {}),
    ...(o.peerNames && o.peerNames.length > 0 ? { peerNames: o.peerNames } : {}),
  };
}

/** What a ConnectionSecurity authenticates with, for logs and status lines ("token", "CA certificate"). */
export function describeSecurity(sec: ConnectionSecurity): string {
  const m = [sec.token ? 'join token' : '', sec.certificate ? 'cluster CA certificate' : ''].filter(Boolean);
  return m.join(' or ');
}
