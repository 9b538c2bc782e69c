// The Grafana dashboard is built on metric names the node really exports: every novacron_* name
// in deploy/grafana/novacron.json must exist in a registry set up as the node sets up its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BootMetrics, createHttpMetrics, createMetricsRegistry } from '../../src/observability/metrics.js';
import { cacheMetrics } from '../../src/cache/metrics.js';
import { REPO_ROOT } from '../helpers/cli.js';

test('every metric in deploy/grafana/novacron.json is exported by the node', async () => {
  const registry = createMetricsRegistry('n1');
  new BootMetrics(registry);
  createHttpMetrics(registry);
  cacheMetrics(registry);
  const metrics = await registry.getMetricsAsJSON();
  const exported = new Set<string>();
  for (const m of metrics) {
    exported.add(m.name);
    if (String(m.type) === 'histogram')
      for (const s of ['_bucket', '_sum', '_count']) exported.add(m.name + s);
  }
  const dashboard = JSON.parse(readFileSync(`${REPO_ROOT}/deploy/grafana/novacron.json`, 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  const used = new Set<string>();
  for (const p of dashboard.panels) {
    for (const t of p.targets ?? [])
      for (const name of t.expr.match(/novacron_[a-z0-9_]+/g) ?? []) used.add(name);
  }
  assert.ok(used.size >= 10, `dashboard uses ${used.size} metrics`);
  for (const name of used) assert.ok(exported.has(name), `${name} is not exported`);
});
