// novacron.v1.NodeService (proto/novacron/v1/node.proto): readiness and the event stream over gRPC,
// the same data as REST /health/ready and /ws. Both methods need scope read.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { EventBus, NovaCronEvent } from '../../boot/events.js';
import type { NodeRuntime } from '../../boot/runtime.js';
import { eventFilter } from '../ws/events.js';
import { PROTO_LOADER_OPTIONS, PROTO_ROOT, type GrpcServiceRegistration } from './server.js';

export const NODE_PROTO = join(PROTO_ROOT, 'novacron/v1/node.proto');

interface WatchRequest {
  type_prefixes: string[];
}

function toEvent(e: NovaCronEvent): { type: string; at: string; data_json: string } {
  return { type: e.type, at: e.at, data_json: JSON.stringify(e.data) };
}

export function nodeServiceRegistration(runtime: NodeRuntime, events: EventBus): GrpcServiceRegistration {
  const packageDefinition = loadSync(NODE_PROTO, PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(packageDefinition) as unknown as {
    novacron: { v1: { NodeService: grpc.ServiceClientConstructor } };
  };
  return {
    definition: pkg.novacron.v1.NodeService.service,
    packageDefinition,
    readMethods: ['GetReadiness', 'WatchEvents'],
    implementation: {
      GetReadiness: (
        _call: grpc.ServerUnaryCall<unknown, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        runtime.readiness().then(
          (r) =>
            callback(null, {
              node_id: runtime.nodeId,
              status: r.status,
              mode: r.mode,
              components: r.components,
            }),
          (err: unknown) => callback({ code: grpc.status.INTERNAL, details: (err as Error).message }),
        );
      },
      WatchEvents: (call: grpc.ServerWritableStream<WatchRequest, unknown>) => {
        const keep = eventFilter(call.request.type_prefixes.join(','));
        const send = (e: NovaCronEvent) => {
          if (!keep || keep(e)) call.write(toEvent(e));
          // End the stream when the node stops, so the server's graceful shutdown does not wait on it.
          if (e.type === 'node.stopping') {
            unsubscribe();
            call.end();
          }
        };
        let unsubscribe = (): void => undefined;
        for (const e of events.recent()) send(e);
        unsubscribe = events.subscribe(send);
        call.on('cancelled', unsubscribe);
        call.on('close', unsubscribe);
      },
    },
  };
}
