// Forwarding VM operations to the node that runs the VM (region mode). A start, stop, restart or
// delete of a VM whose process lives on another live member is sent on to that member's REST API
// with the caller's own token, and its answer is relayed as it came (status, body), marked with
// `x-novacron-served-by`. A forwarded request carries `x-novacron-forwarded-by` and is never
// forwarded again (no loops while a VM moves). When the member cannot be reached or refuses the
// caller's token (nodes that do not share `security.jwt_secret`), the caller gets the 409 naming the
// member and its address, with why forwarding failed.
import { Agent, request as httpRequest } from 'undici';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../boot/services.js';
import { InvalidStateError } from '../../errors.js';
import { vmOperationTarget } from './cluster.js';
// Type-only: declares services.cluster, services.vms, services.security.
import type {} from '../../components/cluster.js';

export const FORWARDED_BY = 'x-novacron-forwarded-by';
export const SERVED_BY = 'x-novacron-served-by';

/** Headers of the caller passed on (the token, the idempotency key, the content type, tracing). */
const PASSED = ['authorization', 'content-type', 'idempotency-key', 'traceparent', 'tracestate'] as const;

export interface ForwardTarget {
  readonly node: string;
  readonly apiUrl: string | undefined;
  readonly address: string;
}

/**
 * Where a request must go instead of this node (pure): a VM operation whose VM runs on another
 * live member. Undefined: handle it here (its VM is here, unplaced, or on a node that is down).
 */
export function forwardTargetOf(input: {
  readonly method: string;
  readonly url: string;
  readonly selfId: string;
  readonly vmNode: string | null | undefined;
  readonly members: readonly {
    readonly id: string;
    readonly addresses: readonly string[];
    readonly apiUrl?: string;
  }[];
}): ForwardTarget | 'not-an-operation' | undefined {
  if (vmOperationTarget(input.method, input.url) === undefined) return 'not-an-operation';
  const node = input.vmNode;
  if (node === undefined || node === null || node === input.selfId) return undefined;
  const owner = input.members.find((m) => m.id === node);
  if (owner === undefined) return undefined; // its node is down: the records can be changed here
  return { node, apiUrl: owner.apiUrl, address: owner.addresses[0] ?? '' };
}

function refusal(vmName: string, t: ForwardTarget, why: string): InvalidStateError {
  return new InvalidStateError(
    `vm ${vmName} runs on node ${t.node} (${t.address}): send this request to that node (${why})`,
    {
      key: 'node',
      details: { node: t.node, address: t.address },
      hint: `e.g. --url ${t.apiUrl ?? `http://${t.address}`}`,
    },
  );
}

/**
 * preHandler hook: forwards VM operations to the member that runs the VM (see the file comment).
 * `timeoutMs` bounds the whole forwarded call (a graceful stop may take `vm.stop_grace_seconds`).
 */
export function forwardToOwner(services: Services, timeoutMs: number) {
  const agent = memberDispatcher(services);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const cluster = services.cluster;
    if (cluster?.mode !== 'etcd' || services.vms === undefined) return undefined;
    const id = vmOperationTarget(request.method, request.url);
    if (id === undefined) return undefined;
    const vm = await services.vms.get(id).catch(() => undefined);
    if (vm === undefined) return undefined;
    const forwarded = request.headers[FORWARDED_BY] !== undefined;
    const t = forwardTargetOf({
      method: request.method,
      url: request.url,
      selfId: cluster.nodeId,
      vmNode: vm.node,
      members: cluster.members(),
    });
    if (t === undefined || t === 'not-an-operation') return undefined;
    if (forwarded)
      throw refusal(
        vm.name,
        t,
        `forwarded here by ${String(request.headers[FORWARDED_BY])}, not forwarded twice`,
      );
    return relayTo(
      services,
      request,
      reply,
      t,
      request.url,
      timeoutMs,
      (why) => refusal(vm.name, t, why),
      agent(),
    );
  };
}

/**
 * Sends `request` (its method, body and the caller's headers) to `path` on member `t`, and relays
 * the answer. `refuse(why)` makes the error for an unreachable member or a refused token.
 */
export async function relayTo(
  services: Services,
  request: FastifyRequest,
  reply: FastifyReply,
  t: ForwardTarget,
  path: string,
  timeoutMs: number,
  refuse: (why: string) => Error,
  dispatcher: Agent,
): Promise<FastifyReply> {
  if (t.apiUrl === undefined) throw refuse('it announces no API URL to forward to');
  const headers: Record<string, string> = { [FORWARDED_BY]: services.cluster?.nodeId ?? '' };
  for (const h of PASSED) {
    const v = request.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const hasBody = request.body !== undefined && request.body !== null;
  if (hasBody) headers['content-type'] = 'application/json';
  let res: Awaited<ReturnType<typeof httpRequest>>;
  try {
    res = await httpRequest(new URL(path, t.apiUrl), {
      method: request.method as 'GET' | 'POST' | 'DELETE',
      headers,
      ...(hasBody ? { body: JSON.stringify(request.body) } : {}),
      dispatcher,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw refuse(`forwarding failed: ${(err as Error).message}`);
  }
  const body = await res.body.text();
  if (res.statusCode === 401 || res.statusCode === 403) {
    throw refuse(
      `it refused this token with ${res.statusCode}: forwarding needs one security.jwt_secret on every node of the region`,
    );
  }
  request.log.info({ node: t.node, path, status: res.statusCode }, `forwarded to node ${t.node}`);
  const type = res.headers['content-type'];
  void reply.header(SERVED_BY, t.node);
  if (typeof type === 'string') void reply.header('content-type', type);
  return reply.status(res.statusCode).send(body);
}

/** One keep-alive dispatcher per node, trusting the CA its own TLS uses (a cluster CA from security.tls.ca_file). */
export function memberDispatcher(services: Services): () => Agent {
  let dispatcher: Agent | undefined;
  return () =>
    (dispatcher ??= new Agent({
      connect: services.security?.tls?.ca ? { ca: services.security.tls.ca } : {},
      keepAliveTimeout: 10_000,
    }));
}
