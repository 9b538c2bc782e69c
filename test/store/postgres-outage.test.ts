// PostgreSQL going away: unreachable at boot (message and time bound), and a throwaway server
// stopped after boot (health down within 5 s, requests fail cleanly, recovery without a restart).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { BootContext, ComponentHealth } from '../../src/boot/component.js';
import { EventBus } from '../../src/boot/events.js';
import type { Services } from '../../src/boot/services.js';
import { databaseComponent } from '../../src/components/database.js';
import { defaultConfig } from '../../src/config/defaults.js';
import { UnavailableError } from '../../src/errors.js';
import { openStore } from '../../src/store/index.js';
import { baseConfig, freePort, missing, pgBinDir, ThrowawayPostgres, usePostgres } from './fixtures.js';

function bootContext(
  database: Record<string, unknown>,
  timeoutSeconds: number,
  services: Services = {},
): BootContext {
  const config = defaultConfig();
  return {
    config: {
      ...config,
      database: { ...config.database, type: 'postgresql', ...database },
      initialization: { ...config.initialization, timeout_seconds: timeoutSeconds },
    },
    mode: 'datacenter',
    logger: pino({ level: 'silent' }),
    metrics: new Registry(),
    events: new EventBus(),
    services,
    signal: new AbortController().signal,
  };
}

/** Polls a health function the way /health/ready does, until `pred` holds; returns the elapsed ms. */
async function pollHealth(
  health: () => Promise<ComponentHealth> | ComponentHealth,
  pred: (h: ComponentHealth) => boolean,
  limitMs: number,
): Promise<{ ms: number; health: ComponentHealth }> {
  const t0 = performance.now();
  for (;;) {
    const h = await health();
    if (pred(h)) return { ms: performance.now() - t0, health: h };
    if (performance.now() - t0 > limitMs)
      throw new Error(`health did not change in ${limitMs} ms: ${JSON.stringify(h)}`);
    await delay(200); // the polling interval of a health endpoint, not a wait for an event
  }
}

describe('PostgreSQL unreachable at boot', () => {
  it('fails within initialization.timeout_seconds naming host, port and cause', async () => {
    const port = await freePort(); // nothing listens there
    const component = databaseComponent();
    const t0 = performance.now();
    await assert.rejects(component.start(bootContext({ port }, 2)), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, new RegExp(`^database unavailable: 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
      return true;
    });
    const ms = performance.now() - t0;
    assert.ok(ms >= 1000 && ms < 2500, `gave up after ${Math.round(ms)} ms (bound: 2000 ms)`);
    assert.equal((await component.health?.())?.status, 'down');
  });

  it('fails at once for a permanent cause (no such database)', async (t) => {
    if (!(await usePostgres())) return t.skip(missing('PostgreSQL (127.0.0.1:5432 or initdb/pg_ctl)'));
    const t0 = performance.now();
    await assert.rejects(
      openStore(baseConfig({ type: 'postgresql', database: 'novacron_no_such_db_x' }), {
        connectTimeoutMs: 10_000,
      }),
      /^UnavailableError: database unavailable: 127\.0\.0\.1:\d+: database "novacron_no_such_db_x" does not exist/,
    );
    assert.ok(performance.now() - t0 < 5000);
  });
});

const binSkip = pgBinDir() === undefined ? missing('PostgreSQL binaries (initdb, pg_ctl)') : false;

describe('PostgreSQL stopped after boot (throwaway instance)', { skip: binSkip }, () => {
  let server: ThrowawayPostgres;
  before(async () => {
    server = await ThrowawayPostgres.create();
  });
  after(async () => {
    await server.destroy();
  });

  it('reports down within 5 s and recovers without a restart', async () => {
    const services: Services = {};
    const component = databaseComponent();
    const ctx = bootContext({ port: server.port, database: 'postgres' }, 5, services);
    await component.start(ctx);
    const store = services.store;
    assert.ok(store !== undefined);
    const health = () => component.health?.() ?? { status: 'down' as const, detail: '' };
    assert.equal((await health()).status, 'up');
    await store.vms.insert({ id: 'v1', name: 'before', spec: {}, desiredState: 'running', state: 'running' });

    await server.stop();
    const down = await pollHealth(health, (h) => h.status === 'down', 5000);
    assert.ok(down.ms < 5000, `down after ${Math.round(down.ms)} ms`);
    assert.match(down.health.detail, new RegExp(`^database unavailable: 127\\.0\\.0\\.1:${server.port}: `));
    // Requests fail cleanly (retryable UnavailableError), they do not hang or crash the process.
    await assert.rejects(store.vms.get('v1'), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(err.retryable, true);
      return true;
    });

    await server.start();
    const up = await pollHealth(health, (h) => h.status === 'up', 10_000);
    assert.match(up.health.detail, /^postgresql /);
    assert.equal((await store.vms.require('v1')).name, 'before');
    await store.vms.insert({ id: 'v2', name: 'after', spec: {}, desiredState: 'running', state: 'running' });
    assert.equal(await store.vms.count(), 2);

    await component.stop?.(ctx);
    assert.equal(services.store, undefined);
    assert.equal((await health()).status, 'down');
    await component.stop?.(ctx); // idempotent
  });
});
