// Retraining input from the real store: samples appended to bandwidth_samples (SQLite) come back as per-link series.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/store/index.js';
import { loadDbDataset, DB_PROFILE } from '../src/ml/eval/db-samples.js';
import { trainBandwidthProfiles } from '../src/ml/eval/bandwidth-eval.js';

test('bandwidth_samples are read in pages and become trainable series', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ml-db-'));
  const store = await openStore({
    type: 'sqlite',
    path: join(dir, 'n.db'),
    dataDir: dir,
    host: '',
    port: 0,
    database: '',
    user: '',
    password: '',
    poolSize: 1,
    ssl: false,
  });
  try {
    const t0 = Date.UTC(2026, 0, 1);
    const samples = [];
    // 1,500 samples on one link (more than one page of 1,000), one gap of an hour in the middle.
    for (let i = 0; i < 1500; i++) {
      const t = t0 + i * 1000 + (i >= 700 ? 3_600_000 : 0);
      samples.push({
        at: new Date(t).toISOString(),
        sourceNode: 'n1',
        targetNode: 'n2',
        bytesPerSecond: 1e8 * (1 + 0.2 * Math.sin(i / 7)),
      });
    }
    await store.bandwidth.append(samples);
    const ds = await loadDbDataset(store.bandwidth);
    assert.equal(ds.name, DB_PROFILE);
    assert.deepEqual(
      ds.series.map((s) => s.samples.length),
      [700, 800],
    );
    const model = trainBandwidthProfiles([ds]);
    assert.ok(DB_PROFILE in model.profiles);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
