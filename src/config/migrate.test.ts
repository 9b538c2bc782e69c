import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';
import { resolveConfig } from './loader.js';
import { parseYamlConfig } from './yaml-file.js';
import { migrateLegacy, migrateToYaml, type LegacyFile } from './migrate.js';

const legacyDir = fileURLToPath(new URL('../../config/examples/legacy/', import.meta.url));
const NAMES = ['dwcp-v3-datacenter.yaml', 'dwcp-v3-internet.yaml', 'dwcp-v3-hybrid.yaml'];

async function legacyFiles(): Promise<LegacyFile[]> {
  return Promise.all(
    NAMES.map(async (n) => ({
      file: n,
      value: parseYamlConfig(await readFile(legacyDir + n, 'utf8'), n).value,
    })),
  );
}

test('the shipped legacy files migrate into one file that loads and validates', async () => {
  const { yaml } = migrateToYaml(await legacyFiles(), {});
  const loaded = resolveConfig({
    parsed: parseYamlConfig(yaml, 'migrated.yaml'),
    env: { DB_PASSWORD: 's3cret' },
    flags: {},
  });
  const c = loaded.config;
  assert.equal(c.system.mode, 'auto');
  assert.equal(c.system.node_id, 'dc1-node-07');
  assert.equal(c.system.cluster_id, 'prod-dc1');
  assert.deepEqual(c.dwcp.profiles.datacenter, {
    rdma_enabled: true,
    streams: 64,
    min_streams: 16,
    max_streams: 256,
    compression: 'lz4',
    compression_level: 1,
    congestion_control: 'bbr',
    consensus: 'raft',
  });
  assert.deepEqual(c.dwcp.profiles.internet, {
    rdma_enabled: false,
    streams: 8,
    min_streams: 2,
    max_streams: 16,
    compression: 'zstd',
    compression_level: 9,
    congestion_control: 'bbr',
    consensus: 'gossip',
  });
  assert.deepEqual(c.dwcp.profiles.hybrid, {
    rdma_enabled: false,
    streams: 16,
    min_streams: 4,
    max_streams: 32,
    compression: 'zstd',
    compression_level: 3,
    congestion_control: 'cubic',
    consensus: 'adaptive',
  });
  // Feature flags are on when any file turns them on (ASS is only on in the internet file).
  assert.equal(c.dwcp.features.sync_ass, true);
  assert.equal(c.dwcp.features.consensus_acp, true);
  assert.equal(c.dwcp.features.encryption, true);
  assert.equal(c.ml.service_address, 'ml-service.dc1.internal:50051');
  assert.equal(c.ml.timeout_ms, 100, 'first file wins a conflict');
  assert.equal(c.database.type, 'postgresql');
  assert.equal(c.database.host, '10.10.0.20');
  assert.equal(c.database.port, 5432);
  assert.equal(c.database.database, 'novacron');
  assert.equal(c.database.password, 's3cret', '${DB_PASSWORD} is carried over unexpanded');
  assert.equal(c.cache.type, 'redis');
  assert.equal(c.cache.address, '10.10.0.30:6379');
  assert.equal(c.cluster.mode, 'etcd');
  assert.deepEqual(c.cluster.etcd.endpoints, [
    'http://10.10.0.11:2379',
    'http://10.10.0.12:2379',
    'http://10.10.0.13:2379',
  ]);
  assert.equal(c.security.tls.cert_file, '/etc/novacron/certs/server.crt');
  assert.equal(c.scheduler.strategy, 'binpack');
  assert.equal(c.monitoring.metrics.path, '/metrics');
  assert.match(yaml, /password: \$\{DB_PASSWORD\}/);
});

test('the unmapped list of the shipped legacy files is exact, and so is the conflict list', async () => {
  const r = migrateLegacy(await legacyFiles());
  assert.deepEqual(
    r.unmapped.map((u) => `${u.file}: ${u.path}`),
    [
      'dwcp-v3-datacenter.yaml: dwcp.rollout_percentage',
      'dwcp-v3-datacenter.yaml: dwcp.amst.tcp_nodelay',
      'dwcp-v3-datacenter.yaml: dwcp.amst.socket_buffer_bytes',
      'dwcp-v3-datacenter.yaml: dwcp.amst.rdma.device',
      'dwcp-v3-datacenter.yaml: dwcp.amst.rdma.port',
      'dwcp-v3-datacenter.yaml: dwcp.amst.rdma.gid_index',
      'dwcp-v3-datacenter.yaml: dwcp.hde.dedup.enabled',
      'dwcp-v3-datacenter.yaml: dwcp.hde.dedup.chunk_size_kb',
      'dwcp-v3-datacenter.yaml: dwcp.hde.delta_encoding',
      'dwcp-v3-datacenter.yaml: dwcp.pba.model',
      'dwcp-v3-datacenter.yaml: dwcp.pba.prediction_window_seconds',
      'dwcp-v3-datacenter.yaml: dwcp.acp.election_timeout_ms',
      'dwcp-v3-datacenter.yaml: dwcp.acp.heartbeat_interval_ms',
      'dwcp-v3-datacenter.yaml: monitoring.prometheus.port',
      'dwcp-v3-datacenter.yaml: monitoring.grafana.enabled',
      'dwcp-v3-datacenter.yaml: monitoring.grafana.port',
      'dwcp-v3-internet.yaml: dwcp.rollout_percentage',
      'dwcp-v3-internet.yaml: dwcp.amst.fec.enabled',
      'dwcp-v3-internet.yaml: dwcp.amst.fec.parity_shards',
      'dwcp-v3-internet.yaml: dwcp.hde.compression.dictionary',
      'dwcp-v3-internet.yaml: dwcp.hde.dedup.enabled',
      'dwcp-v3-internet.yaml: dwcp.hde.dedup.chunk_size_kb',
      'dwcp-v3-internet.yaml: dwcp.pba.model',
      'dwcp-v3-internet.yaml: dwcp.pba.prediction_window_seconds',
      'dwcp-v3-internet.yaml: dwcp.acp.gossip_fanout',
      'dwcp-v3-internet.yaml: dwcp.ass.sync_interval_seconds',
      'dwcp-v3-internet.yaml: monitoring.jaeger.enabled',
      'dwcp-v3-internet.yaml: monitoring.jaeger.endpoint',
      'dwcp-v3-hybrid.yaml: dwcp.hde.compression.adaptive',
      'dwcp-v3-hybrid.yaml: dwcp.acp.rtt_switch_threshold_ms',
    ],
  );
  assert.deepEqual(
    r.conflicts.map((c) => [c.file, c.path, c.value, c.target, c.kept, c.keptFrom]),
    [['dwcp-v3-internet.yaml', 'dwcp.pba.timeout_ms', 250, 'ml.timeout_ms', 100, 'dwcp-v3-datacenter.yaml']],
  );
  assert.deepEqual(
    [...r.modes],
    [
      ['dwcp-v3-datacenter.yaml', 'datacenter'],
      ['dwcp-v3-internet.yaml', 'internet'],
      ['dwcp-v3-hybrid.yaml', 'hybrid'],
    ],
  );
});

test('the output lists every key not migrated in a trailing comment block, and the report says so too', async () => {
  const { yaml, report, result } = migrateToYaml(await legacyFiles(), {});
  const trailer = yaml.slice(yaml.indexOf('legacy keys not migrated'));
  for (const u of result.unmapped) assert.ok(trailer.includes(`${u.file}: ${u.path} =`), u.path);
  assert.match(trailer, /conflicting value/);
  assert.ok(
    report.includes('database.password needs environment variable DB_PASSWORD when the file is loaded'),
  );
  assert.equal(
    report.filter((l) => l.startsWith('  ')).length,
    result.unmapped.length + result.conflicts.length,
  );
});

test('a single file keeps its mode; values without an equivalent are reported, not guessed', () => {
  const r = migrateLegacy([
    {
      file: 'old.yaml',
      value: {
        mode: 'internet',
        dwcp: {
          hde: { compression: { algorithm: 'gzip' } },
          acp: { algorithm: 'paxos' },
          security: { encryption: 'chacha20' },
        },
      },
    },
    { file: 'nameless.yaml', value: { dwcp: { amst: { initial_streams: 4 } } } },
  ]);
  assert.equal((r.config.system as { mode: string }).mode, 'internet');
  assert.deepEqual(
    r.unmapped.map((u) => [u.path, u.reason.split(' (')[0]]),
    [
      ['dwcp.hde.compression.algorithm', 'codec "gzip" has no equivalent'],
      ['dwcp.acp.algorithm', 'consensus "paxos" has no equivalent'],
      ['dwcp.security.encryption', 'cipher "chacha20" is not offered'],
      ['dwcp.amst.initial_streams', 'per-mode setting, but the file names no mode'],
    ],
  );
});

test('a migration whose values break the schema is refused with the path', () => {
  assert.throws(
    () =>
      migrateToYaml(
        [{ file: 'dwcp-v3-internet.yaml', value: { dwcp: { amst: { initial_streams: 1024 } } } }],
        {},
      ),
    (err: unknown) => err instanceof ConfigError && /dwcp\.profiles\.internet\.streams/.test(err.message),
  );
});
