// Test helper: an in-memory SecurityService with an admin and a read token, for tests that build
// the REST or gRPC server without a data directory.
import { randomBytes } from 'node:crypto';
import type { SecurityService } from './index.js';
import { TokenAuthority } from './tokens.js';

export interface TestSecurity {
  readonly security: SecurityService;
  readonly adminToken: string;
  readonly readToken: string;
}

export async function createTestSecurity(): Promise<TestSecurity> {
  const tokens = new TokenAuthority(randomBytes(32));
  return {
    security: { tokens, adminTokenPath: '(in memory)', tls: null },
    adminToken: await tokens.issue({ scope: 'admin' }),
    readToken: await tokens.issue({ scope: 'read', ttlSeconds: 3600 }),
  };
}
