import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Registry } from 'prom-client';
import { BootOrchestrator, BootFailedError, type OrchestratorOptions } from './orchestrator.js';
import type { BootContext, Component } from './component.js';
import { EventBus } from './events.js';
import { defaultConfig } from '../config/defaults.js';

interface Probe {
  log: string[];
}

/** A component for orchestrator tests: waits on a promise we control, records start/stop. */
function comp(
  probe: Probe,
  name: string,
  dependsOn: string[] = [],
  opts: { critical?: boolean; fail?: string; waitMs?: number; timeoutMs?: number; hang?: boolean } = {},
): Component {
  return {
    name,
    phase: 'core',
    dependsOn,
    critical: opts.critical ?? true,
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    async start(ctx) {
      probe.log.push(`start:${name}`);
      if (opts.hang) {
        await new Promise<void>((_, reject) =>
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      }
      if (opts.waitMs) await new Promise((r) => setTimeout(r, opts.waitMs));
      if (opts.fail) throw new Error(opts.fail);
      probe.log.push(`up:${name}`);
    },
    async stop() {
      probe.log.push(`stop:${name}`);
    },
  };
}

const options = (parallel: boolean, extra: Partial<OrchestratorOptions> = {}): OrchestratorOptions => ({
  parallel,
  defaultTimeoutMs: 5000,
  bootTimeoutMs: 10000,
  shutdownTimeoutMs: 1000,
  ...extra,
});

function contextFactory() {
  const config = defaultConfig();
  const logger = pino({ level: 'silent' });
  const metrics = new Registry();
  const events = new EventBus();
  return (_c: Component, signal: AbortSignal): BootContext => ({
    config,
    mode: 'datacenter',
    logger,
    metrics,
    events,
    services: {},
    signal,
  });
}

test('parallel boot starts siblings together; sequential one at a time in plan order', async () => {
  for (const parallel of [true, false]) {
    const probe: Probe = { log: [] };
    const o = new BootOrchestrator(
      [
        comp(probe, 'a'),
        comp(probe, 'b', ['a'], { waitMs: 20 }),
        comp(probe, 'c', ['a'], { waitMs: 20 }),
        comp(probe, 'd', ['b', 'c']),
      ],
      options(parallel),
    );
    const report = await o.boot(contextFactory());
    assert.equal(report.state, 'ready');
    const i = (s: string) => probe.log.indexOf(s);
    if (parallel) {
      assert.ok(i('start:c') < i('up:b'), `c should start before b is up: ${probe.log.join(',')}`);
    } else {
      assert.deepEqual(probe.log, [
        'start:a',
        'up:a',
        'start:b',
        'up:b',
        'start:c',
        'up:c',
        'start:d',
        'up:d',
      ]);
    }
    assert.ok(i('start:d') > i('up:b') && i('start:d') > i('up:c'));
    assert.deepEqual(
      report.components.map((c) => [c.name, c.level, c.status]),
      [
        ['a', 0, 'up'],
        ['b', 1, 'up'],
        ['c', 1, 'up'],
        ['d', 2, 'up'],
      ],
    );
  }
});

test('a critical failure fails fast, names the component and stops started ones in reverse order', async () => {
  const probe: Probe = { log: [] };
  const o = new BootOrchestrator(
    [
      comp(probe, 'a'),
      comp(probe, 'b', ['a']),
      comp(probe, 'db', ['b'], { fail: 'connection refused' }),
      comp(probe, 'api', ['db']),
    ],
    options(true),
  );
  await assert.rejects(o.boot(contextFactory()), (e: unknown) => {
    assert.ok(e instanceof BootFailedError);
    assert.match(e.message, /critical component "db" failed: connection refused/);
    return true;
  });
  assert.deepEqual(probe.log, ['start:a', 'up:a', 'start:b', 'up:b', 'start:db', 'stop:b', 'stop:a']);
  assert.equal(o.state, 'failed');
  const api = o.report().components.find((c) => c.name === 'api')!;
  assert.equal(api.status, 'pending');
});

test('an optional failure marks the component degraded, skips its dependents and goes on', async () => {
  const probe: Probe = { log: [] };
  const o = new BootOrchestrator(
    [
      comp(probe, 'a'),
      comp(probe, 'ml', ['a'], { critical: false, fail: 'ml service unreachable' }),
      comp(probe, 'ml-hints', ['ml'], { critical: false }),
      comp(probe, 'api', ['a']),
    ],
    options(true),
  );
  const report = await o.boot(contextFactory());
  assert.equal(report.state, 'degraded');
  const by = new Map(report.components.map((c) => [c.name, c]));
  assert.equal(by.get('ml')!.status, 'degraded');
  assert.match(by.get('ml')!.error!, /unreachable/);
  assert.equal(by.get('ml-hints')!.status, 'skipped');
  assert.equal(by.get('api')!.status, 'up');
  const health = await o.health();
  assert.deepEqual(
    health.map((h) => [h.name, h.status]),
    [
      ['a', 'up'],
      ['api', 'up'],
      ['ml', 'degraded'],
      ['ml-hints', 'down'],
    ],
  );
});

test('a component that exceeds its timeout is aborted and reported', async () => {
  const probe: Probe = { log: [] };
  const o = new BootOrchestrator([comp(probe, 'slow', [], { hang: true, timeoutMs: 50 })], options(true));
  await assert.rejects(o.boot(contextFactory()), /"slow" failed: timed out after 50 ms/);
});

test('shutdown stops everything in reverse completion order and is idempotent', async () => {
  const probe: Probe = { log: [] };
  const o = new BootOrchestrator(
    [comp(probe, 'a'), comp(probe, 'b', ['a']), comp(probe, 'c', ['b'])],
    options(true),
  );
  await o.boot(contextFactory());
  await Promise.all([o.shutdown(), o.shutdown()]);
  assert.deepEqual(
    probe.log.filter((l) => l.startsWith('stop')),
    ['stop:c', 'stop:b', 'stop:a'],
  );
  assert.equal(o.state, 'stopped');
});

test('a graph error is thrown by the constructor, before anything starts', () => {
  const probe: Probe = { log: [] };
  assert.throws(
    () => new BootOrchestrator([comp(probe, 'a', ['b']), comp(probe, 'b', ['a'])], options(true)),
    /cycle/,
  );
  assert.deepEqual(probe.log, []);
});
