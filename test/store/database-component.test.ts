// The database boot component on its embedded default: SQLite in the data dir, WAL.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { BootContext } from '../../src/boot/component.js';
import { EventBus } from '../../src/boot/events.js';
import type { Services } from '../../src/boot/services.js';
import { databaseComponent } from '../../src/components/database.js';
import { defaultConfig } from '../../src/config/defaults.js';

describe('database component (sqlite default)', () => {
  it('opens <data_dir>/novacron.db in WAL mode, publishes the store, and stops cleanly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'novacron-dbc-'));
    try {
      const config = defaultConfig();
      const services: Services = { dataDir: join(dir, 'resolved') };
      const ctx: BootContext = {
        config: { ...config, system: { ...config.system, data_dir: join(dir, 'configured') } },
        mode: 'datacenter',
        logger: pino({ level: 'silent' }),
        metrics: new Registry(),
        events: new EventBus(),
        services,
        signal: new AbortController().signal,
      };
      const c = databaseComponent({ dependsOn: ['data-dir'] });
      assert.deepEqual([c.name, c.phase, c.critical, c.dependsOn], ['database', 'core', true, ['data-dir']]);
      await c.start(ctx);
      // The data dir resolved by the data-dir component wins over the raw config value.
      assert.ok(existsSync(join(dir, 'resolved', 'novacron.db')));
      assert.ok(existsSync(join(dir, 'resolved', 'novacron.db-wal')));
      const store = services.store;
      assert.ok(store !== undefined);
      assert.equal(store.dialect, 'sqlite');
      const h = await c.health?.();
      assert.equal(h?.status, 'up');
      assert.match(h?.detail ?? '', /^sqlite .*novacron\.db \(schema v\d+\)$/);
      await c.stop?.(ctx);
      assert.equal(services.store, undefined);
      assert.equal((await c.health?.())?.status, 'down');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
