// Token authorisation of every REST route and the /ws upgrade (an onRequest hook, so it runs
// before the body is read). Routes opt out with `config: { public: true }`; the scope a route
// needs is `config.scope`, else `read` for GET/HEAD and `admin` for everything else.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { NovaCronError, ErrorCode } from '../../errors.js';
import type { SecurityService } from '../../security/index.js';
import { bearerToken, type TokenClaims, type TokenScope } from '../../security/tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Claims of the token the request was authorised with; undefined on public routes. */
    auth?: TokenClaims;
  }
}

/** Path prefixes served without a token besides routes marked public: the interactive API docs. */
export const PUBLIC_PREFIXES = ['/docs'] as const;

/** The scope a request needs: the route's `config.scope`, else read for safe methods and admin otherwise. */
export function requiredScope(method: string, routeScope: TokenScope | undefined): TokenScope {
  if (routeScope) return routeScope;
  return method === 'GET' || method === 'HEAD' ? 'read' : 'admin';
}

function isPublic(request: FastifyRequest): boolean {
  if (request.routeOptions.config.public === true) return true;
  const url = request.routeOptions.url;
  return url !== undefined && PUBLIC_PREFIXES.some((p) => url === p || url.startsWith(`${p}/`));
}

/**
 * The token of a request: `Authorization: Bearer …`; for WebSocket upgrades also `?token=`,
 * because browsers cannot set headers on a WebSocket.
 */
export function requestToken(request: FastifyRequest): string | null {
  const fromHeader = bearerToken(request.headers.authorization);
  if (fromHeader !== null) return fromHeader;
  if (request.headers.upgrade?.toLowerCase() === 'websocket') {
    const q = request.query as Record<string, unknown> | undefined;
    const t = q?.token;
    if (typeof t === 'string' && t !== '') return t;
  }
  return null;
}

/** The onRequest hook: 401 for a missing or bad token, 403 for too small a scope. */
export function authHook(security: SecurityService | undefined) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (isPublic(request)) return;
    if (security === undefined) {
      throw new NovaCronError(
        ErrorCode.Unauthenticated,
        'token authorisation is not configured on this server',
      );
    }
    const need = requiredScope(request.method, request.routeOptions.config.scope);
    try {
      request.auth = await security.tokens.authorize(requestToken(request), need);
    } catch (err) {
      if (err instanceof NovaCronError && err.code === ErrorCode.Unauthenticated) {
        void reply.header('www-authenticate', 'Bearer realm="novacron"');
      }
      throw err;
    }
  };
}
