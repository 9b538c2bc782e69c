import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from './defaults.js';
import { detectNetworkMode, type ModeDecision, type ModeProbes, type PeerRtt } from './mode-detect.js';
import { ModeDetector } from './mode-detector.js';
import { gatherModeProbes, peerAddress, probePeerRtt, probeRdma } from './mode-probe.js';
import type { ModeSetting, NovaCronConfig } from './schema.js';

function config(mode: ModeSetting = 'auto', peers: { name: string; url: string }[] = []): NovaCronConfig {
  const c = defaultConfig();
  c.system.mode = mode;
  c.cluster.peers = peers;
  return c;
}

const peer = (name: string, rttMs: number | undefined): PeerRtt => ({
  name,
  url: `http://${name}:8080`,
  rttMs,
  samples: rttMs === undefined ? [] : [rttMs],
  ...(rttMs === undefined ? { error: 'no answer within 300 ms' } : {}),
});

interface Row {
  name: string;
  mode?: ModeSetting;
  probes: ModeProbes;
  want: ModeDecision['mode'];
  confidence: [number, number];
  reason: RegExp;
  explicit?: boolean;
}

const table: Row[] = [
  {
    name: 'explicit mode wins over any evidence',
    mode: 'internet',
    probes: { rdmaDevices: ['mlx5_0'], peers: [peer('a', 0.2)] },
    want: 'internet',
    confidence: [1, 1],
    reason: /system\.mode is set to internet/,
    explicit: true,
  },
  {
    name: 'single node: no peers, no RDMA',
    probes: { rdmaDevices: [], peers: [] },
    want: 'datacenter',
    confidence: [0.2, 0.4],
    reason: /no peers configured and no RDMA device: single node/,
  },
  {
    name: 'sysfs unreadable counts as no RDMA',
    probes: { rdmaDevices: undefined, peers: [] },
    want: 'datacenter',
    confidence: [0.2, 0.4],
    reason: /single node/,
  },
  {
    name: 'all peers below 10 ms',
    probes: { rdmaDevices: [], peers: [peer('a', 0.4), peer('b', 1.2)] },
    want: 'datacenter',
    confidence: [0.85, 0.95],
    reason: /a 0\.40 ms, b 1\.20 ms: all below 10 ms/,
  },
  {
    name: 'all peers above 50 ms',
    probes: { rdmaDevices: [], peers: [peer('eu', 120), peer('us', 180)] },
    want: 'internet',
    confidence: [0.85, 0.95],
    reason: /all above 50 ms, internet/,
  },
  {
    name: 'peers between 10 and 50 ms',
    probes: { rdmaDevices: [], peers: [peer('metro', 25), peer('edge', 30)] },
    want: 'hybrid',
    confidence: [0.85, 0.95],
    reason: /between 10 and 50 ms, hybrid/,
  },
  {
    name: 'near and far peers: hybrid',
    probes: { rdmaDevices: [], peers: [peer('rack', 0.3), peer('far', 90)] },
    want: 'hybrid',
    confidence: [0.7, 0.8],
    reason: /spans datacenter and internet: hybrid/,
  },
  {
    name: 'an RTT near a threshold lowers confidence',
    probes: { rdmaDevices: [], peers: [peer('a', 9), peer('b', 8.5)] },
    want: 'datacenter',
    confidence: [0.6, 0.75],
    reason: /all below 10 ms/,
  },
  {
    name: 'one peer measured lowers confidence',
    probes: { rdmaDevices: [], peers: [peer('a', 1)] },
    want: 'datacenter',
    confidence: [0.75, 0.85],
    reason: /a 1\.00 ms/,
  },
  {
    name: 'a silent peer scales confidence and is named',
    probes: { rdmaDevices: [], peers: [peer('a', 1), peer('b', 1), peer('dead', undefined)] },
    want: 'datacenter',
    confidence: [0.55, 0.65],
    reason: /no answer from dead \(no answer within 300 ms\)/,
  },
  {
    name: 'RDMA with near peers: datacenter, more sure',
    probes: { rdmaDevices: ['mlx5_0'], peers: [peer('a', 0.1), peer('b', 0.1)] },
    want: 'datacenter',
    confidence: [0.94, 0.99],
    reason: /RDMA device mlx5_0 present/,
  },
  {
    name: 'RDMA with far peers: hybrid',
    probes: { rdmaDevices: ['mlx5_0', 'mlx5_1'], peers: [peer('a', 80), peer('b', 90)] },
    want: 'hybrid',
    confidence: [0.5, 0.6],
    reason: /RDMA devices mlx5_0, mlx5_1 present, so a local fabric with remote peers/,
  },
  {
    name: 'RDMA, no peers',
    probes: { rdmaDevices: ['mlx5_0'], peers: [] },
    want: 'datacenter',
    confidence: [0.7, 0.7],
    reason: /RDMA device mlx5_0 present and no peer RTT measured/,
  },
  {
    name: 'every peer silent, no RDMA: datacenter with low confidence',
    probes: { rdmaDevices: [], peers: [peer('x', undefined), peer('y', undefined)] },
    want: 'datacenter',
    confidence: [0.2, 0.2],
    reason: /none of the 2 configured peers answered/,
  },
  {
    name: 'bandwidth that disagrees lowers confidence',
    probes: { rdmaDevices: [], peers: [peer('a', 1), peer('b', 2)], bandwidthMbps: 200 },
    want: 'datacenter',
    confidence: [0.7, 0.8],
    reason: /measured bandwidth 200 Mbit\/s suggests internet/,
  },
  {
    name: 'bandwidth that agrees raises confidence',
    probes: { rdmaDevices: [], peers: [peer('a', 1), peer('b', 2)], bandwidthMbps: 25_000 },
    want: 'datacenter',
    confidence: [0.94, 0.96],
    reason: /25000 Mbit\/s agrees/,
  },
  {
    name: 'only bandwidth known',
    probes: { rdmaDevices: [], peers: [], bandwidthMbps: 50 },
    want: 'internet',
    confidence: [0.4, 0.4],
    reason: /no RTT measured; measured bandwidth 50 Mbit\/s suggests internet/,
  },
];

for (const row of table) {
  test(`detectNetworkMode: ${row.name}`, () => {
    const d = detectNetworkMode(config(row.mode), row.probes);
    assert.equal(d.mode, row.want);
    assert.ok(
      d.confidence >= row.confidence[0] && d.confidence <= row.confidence[1],
      `confidence ${d.confidence} not in ${row.confidence.join('..')}`,
    );
    assert.match(d.reason, row.reason);
    assert.equal(d.explicit, row.explicit ?? false);
  });
}

async function listen(): Promise<Server> {
  const server = createServer((s) => s.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

test('probe: median TCP connect time to a real loopback listener; a closed port is not measured', async () => {
  const server = await listen();
  const port = (server.address() as AddressInfo).port;
  try {
    const live = await probePeerRtt(
      { name: 'n2', url: `http://127.0.0.1:${port}` },
      { timeoutMs: 2000, samples: 3 },
    );
    assert.equal(live.samples.length, 3);
    assert.ok(live.rttMs !== undefined && live.rttMs >= 0);
    assert.equal(live.error, undefined);
    const probes = await gatherModeProbes(config('auto', [{ name: 'n2', url: `127.0.0.1:${port}` }]), {
      timeoutMs: 2000,
      rdmaDir: '/nonexistent/infiniband',
    });
    assert.deepEqual(probes.rdmaDevices, []);
    assert.equal(probes.peers.length, 1);
    // Loopback RTT is far below 10 ms: datacenter, from a real measurement.
    const d = detectNetworkMode(config(), probes);
    assert.equal(d.mode, 'datacenter');
    assert.match(d.reason, /median RTT to peers n2/);
  } finally {
    server.close();
  }
  const closed = await probePeerRtt(
    { name: 'gone', url: `http://127.0.0.1:${port}` },
    { timeoutMs: 2000, samples: 3 },
  );
  assert.equal(closed.rttMs, undefined);
  assert.match(closed.error ?? '', /refused/);
});

test('probe: a bad URL is reported, not thrown', async () => {
  const r = await probePeerRtt({ name: 'x', url: 'http://' }, { timeoutMs: 100, samples: 1 });
  assert.equal(r.rttMs, undefined);
  assert.ok(r.error);
  assert.deepEqual(peerAddress('https://[::1]/x'), { host: '::1', port: 443 });
  assert.deepEqual(peerAddress('10.0.0.2:7070'), { host: '10.0.0.2', port: 7070 });
});

test('probe: RDMA devices are the entries of the sysfs directory', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'novacron-ib-'));
  try {
    assert.deepEqual(await probeRdma(dir), []);
    await mkdir(join(dir, 'mlx5_1'));
    await mkdir(join(dir, 'mlx5_0'));
    assert.deepEqual(await probeRdma(dir), ['mlx5_0', 'mlx5_1']);
    await writeFile(join(dir, 'file'), '');
    assert.deepEqual(await probeRdma(join(dir, 'file')), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ModeDetector: explicit mode is returned without probing', async () => {
  let probed = 0;
  const det = new ModeDetector(config('hybrid'), {
    probe: () => {
      probed++;
      return Promise.resolve({ rdmaDevices: [], peers: [] });
    },
  });
  const d = await det.detect();
  assert.deepEqual([d.mode, d.explicit, probed], ['hybrid', true, 0]);
});

test('ModeDetector: re-detection switches only after consecutive confirmations and reports the change', async () => {
  const script: ModeProbes[] = [
    { rdmaDevices: [], peers: [peer('a', 1), peer('b', 1)] }, // datacenter
    { rdmaDevices: [], peers: [peer('a', 90), peer('b', 90)] }, // internet (1st)
    { rdmaDevices: [], peers: [peer('a', 1), peer('b', 1)] }, // datacenter again: resets
    { rdmaDevices: [], peers: [peer('a', 90), peer('b', 90)] }, // internet (1st)
    { rdmaDevices: [], peers: [peer('a', 95), peer('b', 90)] }, // internet (2nd): switch
  ];
  let i = 0;
  const det = new ModeDetector(config('auto', [{ name: 'a', url: 'a:1' }]), {
    probe: () => Promise.resolve(script[i++]!),
    confirmations: 2,
  });
  const changes: [string, string][] = [];
  det.onChange((next, prev) => changes.push([prev.mode, next.mode]));
  const seen: string[] = [];
  for (let k = 0; k < script.length; k++) seen.push((await det.detect()).mode);
  assert.deepEqual(seen, ['datacenter', 'datacenter', 'datacenter', 'datacenter', 'internet']);
  assert.deepEqual(changes, [['datacenter', 'internet']]);
  assert.equal(det.current?.mode, 'internet');
  assert.ok(det.detectedAt instanceof Date);
});

test('ModeDetector: concurrent detect() calls share one probe run; start/stop on an interval', async () => {
  let probes = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  let thirdRun: () => void = () => undefined;
  const third = new Promise<void>((r) => (thirdRun = r));
  const det = new ModeDetector(config('auto'), {
    probe: async () => {
      probes++;
      if (probes === 3) thirdRun();
      await gate;
      return { rdmaDevices: [], peers: [] };
    },
    intervalMs: 5,
  });
  const a = det.detect();
  const b = det.detect();
  release();
  assert.equal(await a, await b);
  assert.equal(probes, 1);
  // Periodic re-detection runs the probe again on its own; stop() is idempotent.
  // The detector's timer is unref'd (it never keeps a node alive), so this guard keeps the test's loop alive.
  const guard = setTimeout(() => assert.fail('no periodic re-detection within 10 s'), 10_000);
  det.start();
  await third;
  clearTimeout(guard);
  det.stop();
  det.stop();
  assert.equal(det.current?.mode, 'datacenter');
});
