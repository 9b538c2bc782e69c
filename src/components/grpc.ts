// Service component "grpc": the gRPC server on api.grpc_port (TLS like REST), with the standard
// health service following the node's readiness, server reflection, and novacron.v1.NodeService.
// It publishes `services.grpc` (a GrpcRegistry): components that offer gRPC services depend on
// "grpc" and call `services.grpc.addService(...)` in their start; late services are served and
// reflected at once, and their health follows the node's.
import type { Component } from '../boot/component.js';
import { requireService } from '../boot/services.js';
import type { NovaCronGrpcServer } from '../api/grpc/server.js';

export function grpcComponent(options: { dependsOn: readonly string[] }): Component {
  let server: NovaCronGrpcServer | null = null;
  let unsubscribe: (() => void) | null = null;
  return {
    name: 'grpc',
    phase: 'service',
    dependsOn: options.dependsOn,
    critical: true,
    async start(ctx) {
      const security = requireService(ctx.services, 'security');
      const runtime = requireService(ctx.services, 'runtime');
      const [{ NovaCronGrpcServer }, { nodeServiceRegistration }] = await Promise.all([
        import('../api/grpc/server.js'),
        import('../api/grpc/node-service.js'),
      ]);
      const s = new NovaCronGrpcServer({
        host: ctx.config.api.host,
        port: ctx.config.api.grpc_port,
        security,
      });
      s.addService(nodeServiceRegistration(runtime, ctx.events));
      await s.listen();
      server = s;
      // Health follows readiness: re-derived whenever the node or a component changes state.
      const refresh = () => {
        runtime.readiness().then(
          (r) => s.setServing(r.status === 'ready' || r.status === 'degraded'),
          () => s.setServing(false),
        );
      };
      unsubscribe = ctx.events.subscribe((e) => {
        if (e.type === 'node.ready' || e.type === 'component.status') refresh();
        else if (e.type === 'node.stopping') s.setServing(false);
      });
      ctx.services.grpc = s;
    },
    async stop(ctx) {
      unsubscribe?.();
      unsubscribe = null;
      await server?.stop(Math.min(5000, ctx.config.initialization.shutdown_timeout_seconds * 1000));
      server = null;
    },
    health: () =>
      server
        ? {
            status: 'up',
            detail: `${server.tls ? 'tls' : 'plaintext'} ${server.address}, ${server.serving ? 'SERVING' : 'NOT_SERVING'}`,
          }
        : { status: 'down', detail: 'not listening' },
  };
}
