// Public surface of security: the token authority, key material, TLS material and secret sources.
// The security component publishes a SecurityService; the API servers authorise through it.
import type { TlsMaterial } from './tls.js';
import type { TokenAuthority } from './tokens.js';

export { TokenAuthority, TOKEN_SCOPES, TokenScope, bearerToken, parseTtl, scopeAllows } from './tokens.js';
export type { TokenClaims, IssueOptions } from './tokens.js';
export { adminTokenPath, ensureAdminToken, loadSigningKey } from './key-store.js';
export { findAdminToken } from './find-token.js';
export type { FoundToken } from './find-token.js';
export { isLoopbackHost, loadTlsMaterial, tlsRequired, MIN_TLS_VERSION } from './tls.js';
export type { TlsMaterial } from './tls.js';

/** What the security component offers the API servers. */
export interface SecurityService {
  readonly tokens: TokenAuthority;
  /** `<data_dir>/admin.token`. */
  readonly adminTokenPath: string;
  /** Certificate and key the REST and gRPC servers serve with; null when TLS is off (loopback). */
  readonly tls: TlsMaterial | null;
}

declare module '../boot/services.js' {
  interface Services {
    security?: SecurityService;
  }
}
