// Table tests for every filter plugin, each alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FilterContext } from '../plugin.js';
import { mockNode, mockRequest, res } from '../testing/harness.js';
import type { NodeSnapshot, PlacementRequest } from '../types.js';
import { capacityFilter } from './capacity.js';
import { driverCapabilityFilter } from './driver-capability.js';
import { antiAffinityFilter, spreadFilter } from './group-placement.js';
import { labelSelectorFilter } from './label-selector.js';
import { nodeStatusFilter } from './node-status.js';

const ctx = (min = 0): FilterContext => ({ groupMin: () => min });

interface Case {
  readonly name: string;
  readonly req: PlacementRequest;
  readonly node: NodeSnapshot;
  readonly min?: number;
  /** undefined: node accepted; a regexp: rejected with a matching reason. */
  readonly want: RegExp | undefined;
}

function table(
  plugin: {
    name: string;
    filter: (r: PlacementRequest, n: NodeSnapshot, c: FilterContext) => string | undefined;
  },
  cases: Case[],
): void {
  describe(plugin.name, () => {
    for (const c of cases)
      it(c.name, () => {
        const got = plugin.filter(c.req, c.node, ctx(c.min));
        if (c.want === undefined) assert.equal(got, undefined);
        else assert.match(got ?? '<accepted>', c.want);
      });
  });
}

table(capacityFilter, [
  {
    name: 'fits',
    req: mockRequest('a', { resources: res(4, 4096, 10) }),
    node: mockNode('n'),
    want: undefined,
  },
  {
    name: 'exact fit',
    req: mockRequest('a', { resources: res(16, 65536, 500) }),
    node: mockNode('n'),
    want: undefined,
  },
  {
    name: 'cpu short',
    req: mockRequest('a', { resources: res(4, 1024, 1) }),
    node: mockNode('n', { allocated: res(13, 0, 0) }),
    want: /insufficient cpu: 3 free, 4 requested/,
  },
  {
    name: 'memory short',
    req: mockRequest('a', { resources: res(1, 70000, 1) }),
    node: mockNode('n'),
    want: /insufficient memory/,
  },
  {
    name: 'disk short',
    req: mockRequest('a', { resources: res(1, 1, 501) }),
    node: mockNode('n'),
    want: /insufficient disk/,
  },
]);

table(nodeStatusFilter, [
  { name: 'ready', req: mockRequest('a'), node: mockNode('n'), want: undefined },
  ...(['down', 'draining', 'partitioned', 'cordoned'] as const).map((status) => ({
    name: status,
    req: mockRequest('a'),
    node: mockNode('n', { status }),
    want: new RegExp(`node is ${status}`),
  })),
]);

table(labelSelectorFilter, [
  { name: 'no selector', req: mockRequest('a'), node: mockNode('n'), want: undefined },
  {
    name: 'match',
    req: mockRequest('a', { nodeSelector: { zone: 'a', ssd: 'yes' } }),
    node: mockNode('n', { labels: { zone: 'a', ssd: 'yes', extra: '1' } }),
    want: undefined,
  },
  {
    name: 'missing label',
    req: mockRequest('a', { nodeSelector: { zone: 'a' } }),
    node: mockNode('n'),
    want: /label zone missing/,
  },
  {
    name: 'other value',
    req: mockRequest('a', { nodeSelector: { zone: 'a' } }),
    node: mockNode('n', { labels: { zone: 'b' } }),
    want: /label zone=b \(want a\)/,
  },
]);

table(driverCapabilityFilter, [
  { name: 'any driver', req: mockRequest('a'), node: mockNode('n', { drivers: ['sim'] }), want: undefined },
  { name: 'has driver', req: mockRequest('a', { driver: 'qemu' }), node: mockNode('n'), want: undefined },
  {
    name: 'missing driver',
    req: mockRequest('a', { driver: 'qemu' }),
    node: mockNode('n', { drivers: ['sim'] }),
    want: /missing driver qemu \(has sim\)/,
  },
  {
    name: 'no live migration',
    req: mockRequest('a', { requireLiveMigration: true }),
    node: mockNode('n', { liveMigration: false }),
    want: /no live migration/,
  },
]);

table(antiAffinityFilter, [
  { name: 'no group', req: mockRequest('a'), node: mockNode('n', { groups: { db: 1 } }), want: undefined },
  {
    name: 'group absent',
    req: mockRequest('a', { antiAffinityGroup: 'db' }),
    node: mockNode('n'),
    want: undefined,
  },
  {
    name: 'group present',
    req: mockRequest('a', { antiAffinityGroup: 'db' }),
    node: mockNode('n', { groups: { db: 1 } }),
    want: /anti-affinity: 1 VM\(s\) of group db/,
  },
]);

table(spreadFilter, [
  {
    name: 'within skew',
    req: mockRequest('a', { spread: { group: 'web', maxSkew: 1 } }),
    node: mockNode('n', { groups: { web: 2 } }),
    min: 2,
    want: undefined,
  },
  {
    name: 'beyond skew',
    req: mockRequest('a', { spread: { group: 'web', maxSkew: 1 } }),
    node: mockNode('n', { groups: { web: 2 } }),
    min: 1,
    want: /spread: group web would have 3 here vs 1/,
  },
  {
    name: 'larger skew allowed',
    req: mockRequest('a', { spread: { group: 'web', maxSkew: 2 } }),
    node: mockNode('n', { groups: { web: 2 } }),
    min: 1,
    want: undefined,
  },
]);
