// Both gRPC server implementations of `ml serve` with both client transports: the same answers,
// the same errors, the same health service, the same metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { startMlServer } from './server.js';
import { createMlClient, type MlTransport } from '../client.js';

const history = [5, 5.5, 4.8, 6, 5.2, 5.1, 4.9, 6.3, 5.8];
const nodes = [
  { nodeId: 'a', cpuAvailable: 8, memoryAvailable: 32, cpuCapacity: 16, memoryCapacity: 64 },
  { nodeId: 'b', cpuAvailable: 2, memoryAvailable: 4, cpuCapacity: 16, memoryCapacity: 64 },
];

for (const impl of ['http2', 'grpc-js'] as const) {
  test(`server ${impl}: both client transports, the health service and the metrics agree`, async () => {
    const server = await startMlServer({ port: 0, watch: false, server: impl });
    try {
      const answers = [];
      for (const transport of ['http2', 'grpc-js'] as MlTransport[]) {
        const client = createMlClient(
          {
            enabled: true,
            service_address: `127.0.0.1:${server.port}`,
            timeout_ms: 2000,
            fallback_enabled: false,
            health_check_interval_seconds: 3600,
            breaker_failure_threshold: 5,
            breaker_reset_seconds: 10,
            transport_thread_young_mb: 2,
          },
          undefined,
          { backgroundHealth: false, transport },
        );
        try {
          const h = await client.ready();
          assert.equal(h.status, 'up', `${transport}: ${h.detail}`);
          assert.deepEqual(
            h.models?.map((m) => m.kind),
            ['bandwidth', 'lifetime'],
          );
          const bw = await client.predictBandwidth(history, { profile: 'fcc_5s' });
          const batch = await client.predictBandwidthBatch([history, [1, 2, 3]]);
          const pl = await client.optimizePlacement({
            taskId: 't',
            nodes,
            need: { cpu: 2, memory: 4 },
            nowS: 0,
          });
          const lt = await client.predictLifetime([{ vcpus: 2, memoryGb: 4, batchSize: 1, arrivalTimeS: 0 }]);
          for (const a of [bw, ...batch, pl, ...lt]) assert.equal(a.source, 'model', transport);
          answers.push({ bw, batch, pl, lt });
        } finally {
          client.close();
        }
      }
      assert.deepEqual(answers[0], answers[1], 'both transports carry the same answers');

      const Health = grpc.makeClientConstructor(healthService, 'Health');
      const hc = new Health(
        `127.0.0.1:${server.port}`,
        grpc.credentials.createInsecure(),
      ) as unknown as grpc.Client & {
        check(
          req: { service: string },
          cb: (err: grpc.ServiceError | null, res?: { status: unknown }) => void,
        ): void;
      };
      try {
        const st = await new Promise<unknown>((resolve, reject) =>
          hc.check({ service: 'novacron.ml.v1.TaskPlacer' }, (e, r) => (e ? reject(e) : resolve(r!.status))),
        );
        assert.ok(st === 'SERVING' || st === 1, String(st));
      } finally {
        hc.close();
      }
      const text = await server.metrics.metrics();
      assert.match(text, /novacron_ml_requests_total\{method="OptimizePlacement",code="OK"\} 2/);
    } finally {
      await server.close();
    }
  });
}
