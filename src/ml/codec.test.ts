// The hand-written codecs against protobufjs's reflection of ml_service.proto: same values both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import * as c from './codec.js';
import { ML_PROTO_PATH, loadMlServices } from './proto.js';

const root = new protobuf.Root().loadSync(ML_PROTO_PATH, { keepCase: true });
const type = (name: string) => root.lookupType(`novacron.ml.v1.${name}`);
const TO_OBJECT = { longs: Number, defaults: true, arrays: true } as const;

/** Encodes with ours and decodes with reflection, and the other way round; returns both readings. */
function both<T extends object>(name: string, cd: c.Codec<T>, value: T) {
  const t = type(name);
  const ours = cd.serialize(value);
  const reflected = t.toObject(t.decode(ours), TO_OBJECT);
  const theirs = Buffer.from(t.encode(t.fromObject(value)).finish());
  const decoded = cd.deserialize(theirs);
  return { reflected, decoded };
}

const bwReq = c.codec(c.encodeBandwidthRequest, c.decodeBandwidthRequest);
const bwRes = c.codec(c.encodeBandwidthResponse, c.decodeBandwidthResponse);
const plReq = c.codec(c.encodePlacementRequest, c.decodePlacementRequest);
const plRes = c.codec(c.encodePlacementResponse, c.decodePlacementResponse);

const node = (i: number) => ({
  node_id: `node-${i}`,
  cpu_available: 4.5 + i,
  memory_available: 16,
  network_bandwidth: 1e9,
  current_load: 0.25,
  cpu_capacity: 48,
  memory_capacity: 384,
  resident_end_times_s: [1000.5, 2e6, 3],
});

const SAMPLES: [string, c.Codec<never>, object][] = [
  [
    'BandwidthRequest',
    bwReq as unknown as c.Codec<never>,
    {
      vm_id: 'vm-1',
      timestamp: 1_764_000_000,
      historical_bandwidth: [1.5, 2e9, 0, 3],
      network_type: 'internet',
      profile: 'fcc_5s',
    },
  ],
  [
    'BandwidthResponse',
    bwRes as unknown as c.Codec<never>,
    {
      predicted_bandwidth: 12.5,
      confidence: 0.75,
      prediction_time_us: 17,
      lower_bound: 10,
      upper_bound: 14,
      model_version: 'bandwidth-x/fcc_5s',
    },
  ],
  [
    'BandwidthBatchRequest',
    c.codec(c.encodeBandwidthBatchRequest, c.decodeBandwidthBatchRequest) as unknown as c.Codec<never>,
    {
      requests: [
        { vm_id: 'a', timestamp: 0, historical_bandwidth: [1], network_type: '', profile: '' },
        { vm_id: '', timestamp: 5, historical_bandwidth: [], network_type: 'x', profile: 'p' },
      ],
    },
  ],
  [
    'BandwidthBatchResponse',
    c.codec(c.encodeBandwidthBatchResponse, c.decodeBandwidthBatchResponse) as unknown as c.Codec<never>,
    {
      responses: [
        {
          predicted_bandwidth: 1,
          confidence: 0.5,
          prediction_time_us: 0,
          lower_bound: 0,
          upper_bound: 2,
          model_version: 'v',
        },
      ],
    },
  ],
  [
    'PlacementRequest',
    plReq as unknown as c.Codec<never>,
    {
      task_id: 't-1',
      available_nodes: [node(0), node(1)],
      requirements: [{ cpu_required: 2, memory_required: 4, network_required: 0 }],
      vm: { vcpus: 2, memory_gb: 4, flavor: 'g', batch_size: 3, arrival_time_s: 1000 },
      now_s: 999.5,
    },
  ],
  [
    'PlacementResponse',
    plRes as unknown as c.Codec<never>,
    {
      selected_node_id: 'node-1',
      confidence: 0.4,
      reasoning: 'predicted lifetime short — ünïcode ok',
      scores: [
        { node_id: 'node-1', score: 0.9, reason: 'r1' },
        { node_id: 'node-0', score: 0.1, reason: '' },
      ],
      model_version: 'lifetime-x',
      predicted_lifetime_class: 2,
      predicted_lifetime_s: 86400,
    },
  ],
  [
    'LifetimeRequest',
    c.codec(c.encodeLifetimeRequest, c.decodeLifetimeRequest) as unknown as c.Codec<never>,
    { vms: [{ vcpus: 1, memory_gb: 0.75, flavor: '', batch_size: -1, arrival_time_s: 0 }] },
  ],
  [
    'LifetimeResponse',
    c.codec(c.encodeLifetimeResponse, c.decodeLifetimeResponse) as unknown as c.Codec<never>,
    {
      predictions: [{ lifetime_class: 1, probabilities: [0.2, 0.5, 0.3], expected_lifetime_s: 7200 }],
      model_version: 'lifetime-x',
    },
  ],
  [
    'HealthResponse',
    c.codec(c.encodeHealthResponse, c.decodeHealthResponse) as unknown as c.Codec<never>,
    {
      healthy: true,
      version: 'novacron-ml 0.1.0',
      models: [{ kind: 'bandwidth', version: 'b-1', file: '/m/b.json' }],
    },
  ],
];

test('every message: our encoding reads back the same through reflection, and reflection’s through ours', () => {
  for (const [name, cd, value] of SAMPLES) {
    const { reflected, decoded } = both(name, cd, value as never);
    assert.deepEqual(reflected, value, `${name}: ours → reflection`);
    assert.deepEqual(decoded, value, `${name}: reflection → ours`);
  }
});

test('absent fields decode to proto3 defaults; a missing sub-message is null; defaults are not sent', () => {
  assert.deepEqual(plReq.deserialize(Buffer.alloc(0)), {
    task_id: '',
    available_nodes: [],
    requirements: [],
    vm: null,
    now_s: 0,
  });
  assert.equal(bwRes.serialize({ predicted_bandwidth: 0, confidence: 0, model_version: '' }).length, 0);
  // A partial object, as tests and older callers send.
  const partial = bwReq.deserialize(bwReq.serialize({ historical_bandwidth: [1, 2, 3] }));
  assert.deepEqual(partial.historical_bandwidth, [1, 2, 3]);
  assert.equal(partial.profile, '');
});

test('NaN is sent (so the client can reject it), unpacked repeated doubles and unknown fields are read', () => {
  assert.ok(
    Number.isNaN(bwRes.deserialize(bwRes.serialize({ predicted_bandwidth: NaN })).predicted_bandwidth),
  );
  const w = protobuf.Writer.create();
  // field 3 unpacked (wire type 1) twice, then an unknown field 99 (string) and unknown 100 (varint).
  w.uint32((3 << 3) | 1).double(7);
  w.uint32((3 << 3) | 1).double(8);
  w.uint32((99 << 3) | 2).string('from a newer peer');
  w.uint32((100 << 3) | 0).uint32(5);
  w.uint32((101 << 3) | 5).fixed32(9); // unknown fixed32
  w.uint32((102 << 3) | 1).fixed64(9); // unknown fixed64
  w.uint32((103 << 3) | 3)
    .uint32((1 << 3) | 0)
    .uint32(1)
    .uint32((103 << 3) | 4); // unknown group
  w.uint32((5 << 3) | 2).string('fcc_1s');
  const m = bwReq.deserialize(Buffer.from(w.finish()));
  assert.deepEqual(m.historical_bandwidth, [7, 8]);
  assert.equal(m.profile, 'fcc_1s');
});

test('int64 and int32 edge values: exact sizes and the same values as reflection', () => {
  const t = type('BandwidthRequest');
  for (const ts of [
    1,
    127,
    128,
    2 ** 28,
    2 ** 35 - 1,
    2 ** 35,
    2 ** 42,
    2 ** 49,
    2 ** 52,
    Number.MAX_SAFE_INTEGER,
    -1,
    -(2 ** 40),
  ]) {
    const ours = bwReq.serialize({ timestamp: ts });
    const theirs = Buffer.from(t.encode(t.fromObject({ timestamp: ts })).finish());
    assert.deepEqual(ours, theirs, `timestamp ${ts}`);
    assert.equal(bwReq.deserialize(theirs).timestamp, ts);
  }
  const vmCodec = c.codec(c.encodeLifetimeRequest, c.decodeLifetimeRequest);
  for (const b of [1, -1, 2 ** 31 - 1, -(2 ** 31), 7.9]) {
    const ours = vmCodec.serialize({ vms: [{ batch_size: b }] });
    const decoded = type('LifetimeRequest').decode(ours) as unknown as { vms: { batch_size: number }[] };
    assert.equal(decoded.vms[0]!.batch_size, b | 0, `batch_size ${b}`);
  }
});

test('short and long strings, ASCII or not, encode as reflection does', () => {
  const t = type('NodeScore');
  const scoreCodec = c.codec(c.encodePlacementResponse, c.decodePlacementResponse);
  for (const id of ['n', 'node-1', 'nœud-1', 'ü', '🚀', 'x'.repeat(24), 'é'.repeat(24), 'x'.repeat(25), '']) {
    const ours = scoreCodec.serialize({ scores: [{ node_id: id, score: 1, reason: id }] });
    const back = type('PlacementResponse').decode(ours) as unknown as { scores: { node_id: string }[] };
    assert.equal(back.scores[0]!.node_id, id, JSON.stringify(id));
    assert.deepEqual(
      scoreCodec.deserialize(ours).scores[0],
      t.toObject(t.fromObject({ node_id: id, score: 1, reason: id }), TO_OBJECT),
    );
  }
  // A lone surrogate is not valid UTF-16: it becomes U+FFFD, and the message still has the right size.
  const lone = scoreCodec.deserialize(scoreCodec.serialize({ selected_node_id: '\ud800' }));
  assert.equal(lone.selected_node_id, '\ufffd');
});

test('truncated bytes throw (grpc-js turns that into a failed call), they do not yield a half message', () => {
  const bytes = plReq.serialize({ task_id: 't', available_nodes: [node(0)] });
  // Bytes 0-2 are task_id (a cut there is a shorter valid message); every cut inside the node throws.
  for (let cut = 4; cut < bytes.length; cut++) {
    assert.throws(() => plReq.deserialize(bytes.subarray(0, cut)), RangeError, `cut at ${cut}`);
  }
  assert.throws(() => bwReq.deserialize(Buffer.from([(9 << 3) | 7])), /invalid wire type 7/);
});

test('property: random placement requests agree with reflection both ways', () => {
  const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
  const arbNode = fc.record({
    node_id: fc.string(),
    cpu_available: finite,
    memory_available: finite,
    network_bandwidth: finite,
    current_load: finite,
    cpu_capacity: finite,
    memory_capacity: finite,
    resident_end_times_s: fc.array(finite, { maxLength: 12 }),
  });
  fc.assert(
    fc.property(
      fc.record({
        task_id: fc.string(),
        available_nodes: fc.array(arbNode, { maxLength: 8 }),
        requirements: fc.array(
          fc.record({ cpu_required: finite, memory_required: finite, network_required: finite }),
          { maxLength: 2 },
        ),
        vm: fc.option(
          fc.record({
            vcpus: finite,
            memory_gb: finite,
            flavor: fc.string(),
            batch_size: fc.integer(),
            arrival_time_s: finite,
          }),
          { nil: null },
        ),
        now_s: finite,
      }),
      (value) => {
        const { reflected, decoded } = both('PlacementRequest', plReq, value);
        // -0 and 0 are the same default on the wire; compare as numbers.
        assert.deepEqual(JSON.parse(JSON.stringify(reflected)), JSON.parse(JSON.stringify(value)));
        assert.deepEqual(JSON.parse(JSON.stringify(decoded)), JSON.parse(JSON.stringify(value)));
      },
    ),
    { numRuns: 200 },
  );
});

test('service definitions: every rpc of the .proto is there, with its path', () => {
  const defs = loadMlServices();
  for (const [svc, def] of [
    ['BandwidthPredictor', defs.bandwidth],
    ['TaskPlacer', defs.placer],
  ] as const) {
    const s = root.lookupService(`novacron.ml.v1.${svc}`);
    assert.deepEqual(Object.keys(def).sort(), Object.keys(s.methods).sort());
    for (const m of Object.keys(s.methods)) assert.equal(def[m]!.path, `/novacron.ml.v1.${svc}/${m}`);
  }
});
