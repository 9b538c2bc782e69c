// API tokens: HS256-signed JWTs carrying one scope (admin or read). Signing and verification are
// pure apart from the injected clock; where the key and the admin token live is key-store.ts's job.
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { NovaCronError, ErrorCode } from '../errors.js';

export const TokenScope = { Admin: 'admin', Read: 'read' } as const;
export type TokenScope = (typeof TokenScope)[keyof typeof TokenScope];
export const TOKEN_SCOPES: readonly TokenScope[] = ['admin', 'read'];

const ISSUER = 'novacron';
const AUDIENCE = 'novacron-api';

export interface TokenClaims {
  readonly subject: string;
  readonly scope: TokenScope;
  /** Unix seconds; null for a token without expiry (the admin token). */
  readonly expiresAt: number | null;
  readonly issuedAt: number;
}

export interface IssueOptions {
  readonly scope: TokenScope;
  /** Lifetime in seconds; omitted: the token never expires. */
  readonly ttlSeconds?: number;
  readonly subject?: string;
}

/** True when a token of scope `have` may call a route that needs `need` (admin may do everything). */
export function scopeAllows(have: TokenScope, need: TokenScope): boolean {
  return have === 'admin' || have === need;
}

export function isTokenScope(v: unknown): v is TokenScope {
  return v === 'admin' || v === 'read';
}

/** Parses `24h`, `30m`, `7d`, `90s` or a bare number of seconds into seconds. */
export function parseTtl(text: string): number {
  const m = /^\s*(\d+)\s*(s|m|h|d)?\s*$/.exec(text);
  if (!m) {
    throw new NovaCronError(ErrorCode.Validation, `invalid TTL "${text}"`, {
      key: 'ttl',
      hint: 'write a number followed by s, m, h or d, e.g. 24h',
    });
  }
  const n = Number(m[1]);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  if (n <= 0) throw new NovaCronError(ErrorCode.Validation, 'TTL must be positive', { key: 'ttl' });
  return n * unit;
}

/** How long a verified token is remembered (by its exact text), and how many are. */
export const VERIFIED_CACHE_MS = 60_000;
export const VERIFIED_CACHE_MAX = 1024;

/**
 * Signs and verifies NovaCron tokens with one HMAC key. Verified tokens are remembered by their
 * exact text for up to VERIFIED_CACHE_MS (never past their expiry), so a client sending the same
 * token on every request pays for one HMAC and claims check per minute, not per request. Only
 * successes are remembered; the key of an authority never changes (a new key is a new authority).
 */
export class TokenAuthority {
  readonly #key: Uint8Array;
  readonly #now: () => number;
  /** Token text → claims and the instant (ms) until which they may be served without verifying. */
  readonly #verified = new Map<string, { readonly claims: TokenClaims; readonly until: number }>();

  /** `key` must be at least 32 bytes; `now` returns milliseconds (injected for tests). */
  constructor(key: Uint8Array, now: () => number = Date.now) {
    if (key.length < 32) {
      throw new NovaCronError(ErrorCode.ConfigInvalid, 'the token signing key must be at least 32 bytes', {
        key: 'security.jwt_secret',
        hint: 'use a secret of 32 or more characters, or leave it empty to generate one',
      });
    }
    this.#key = key;
    this.#now = now;
  }

  /** How many verified tokens are remembered now (at most VERIFIED_CACHE_MAX). */
  get rememberedTokens(): number {
    return this.#verified.size;
  }

  async issue(options: IssueOptions): Promise<string> {
    const nowSec = Math.floor(this.#now() / 1000);
    const jwt = new SignJWT({ scope: options.scope })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(options.subject ?? `${options.scope}-token`)
      .setIssuedAt(nowSec)
      .setJti(crypto.randomUUID());
    if (options.ttlSeconds !== undefined) jwt.setExpirationTime(nowSec + options.ttlSeconds);
    return jwt.sign(this.#key);
  }

  /**
   * Verifies `token` and checks it may act with scope `need`: throws `unauthenticated` when it
   * is missing or invalid, `permission_denied` when its scope is not enough.
   */
  async authorize(token: string | null, need: TokenScope): Promise<TokenClaims> {
    if (token === null || token === '') {
      throw new NovaCronError(ErrorCode.Unauthenticated, 'missing token', {
        hint: 'pass Authorization: Bearer <token> (the admin token is in <data_dir>/admin.token)',
      });
    }
    const claims = await this.verify(token);
    if (!scopeAllows(claims.scope, need)) {
      throw new NovaCronError(
        ErrorCode.PermissionDenied,
        `this needs a token with scope ${need}; the token has scope ${claims.scope}`,
      );
    }
    return claims;
  }

  /**
   * Verifies a token; throws NovaCronError `unauthenticated` for a missing, malformed, badly
   * signed or expired one. The message never contains the token.
   */
  async verify(token: string): Promise<TokenClaims> {
    const now = this.#now();
    const hit = this.#verified.get(token);
    if (hit !== undefined) {
      if (now < hit.until) return hit.claims;
      this.#verified.delete(token);
    }
    const claims = await this.#verifyFully(token);
    // Expired when exp <= now in whole seconds (as jose checks): serve from memory strictly before.
    const until = Math.min(
      now + VERIFIED_CACHE_MS,
      claims.expiresAt === null ? Infinity : claims.expiresAt * 1000,
    );
    if (until > now) {
      this.#verified.set(token, { claims, until });
      if (this.#verified.size > VERIFIED_CACHE_MAX) {
        const oldest = this.#verified.keys().next();
        if (oldest.done !== true) this.#verified.delete(oldest.value);
      }
    }
    return claims;
  }

  async #verifyFully(token: string): Promise<TokenClaims> {
    try {
      const { payload } = await jwtVerify(token, this.#key, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['HS256'],
        currentDate: new Date(this.#now()),
      });
      if (!isTokenScope(payload.scope)) throw new Error('token has no valid scope');
      return {
        subject: payload.sub ?? '',
        scope: payload.scope,
        expiresAt: payload.exp ?? null,
        issuedAt: payload.iat ?? 0,
      };
    } catch (err) {
      const reason =
        err instanceof joseErrors.JWTExpired
          ? 'token expired'
          : err instanceof joseErrors.JWSSignatureVerificationFailed
            ? 'token signature invalid'
            : 'token invalid';
      throw new NovaCronError(ErrorCode.Unauthenticated, reason, {
        hint: 'pass a valid token: Authorization: Bearer <token> (see `novacron token create`)',
      });
    }
  }
}

/** Extracts the token of an `Authorization: Bearer …` header value; null when absent or another scheme. */
export function bearerToken(header: string | readonly string[] | undefined): string | null {
  const value = Array.isArray(header) ? header[0] : header;
  if (typeof value !== 'string') return null;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(value);
  return m ? m[1]! : null;
}
