import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_MODELS_DIR,
  makeModelFile,
  modelVersion,
  parseModelFile,
  scanModelsDir,
} from './model-file.js';
import { NovaCronError } from '../../errors.js';

const shipped = scanModelsDir(DEFAULT_MODELS_DIR);

test('the shipped models load, validate and carry versions', () => {
  assert.ok(shipped.bandwidth, 'a bandwidth model ships in models/');
  assert.ok(shipped.lifetime, 'a lifetime model ships in models/');
  assert.deepEqual(shipped.rejected, []);
  assert.match(shipped.bandwidth.file.version, /^bandwidth-\d{8}-[0-9a-f]{10}$/);
  assert.ok('generic' in shipped.bandwidth.file.params.profiles);
});

test('versions depend on the parameters and the day only', () => {
  const d = new Date('2026-01-02T03:04:05Z');
  assert.equal(
    modelVersion('bandwidth', { a: 1 }, d),
    modelVersion('bandwidth', { a: 1 }, new Date('2026-01-02T23:00:00Z')),
  );
  assert.notEqual(modelVersion('bandwidth', { a: 1 }, d), modelVersion('bandwidth', { a: 2 }, d));
  assert.match(modelVersion('lifetime', {}, d), /^lifetime-20260102-/);
});

test('malformed files are rejected with the file named', () => {
  const good = shipped.bandwidth!.file;
  for (const bad of [
    'not json',
    '{}',
    JSON.stringify({ ...good, formatVersion: 99 }),
    JSON.stringify({ ...good, version: '' }),
    JSON.stringify({ ...good, kind: 'other' }),
    JSON.stringify({ ...good, params: { defaultProfile: 'x', profiles: {} } }),
  ]) {
    assert.throws(
      () => parseModelFile(bad, 'f.json'),
      (e: unknown) => e instanceof NovaCronError && e.message.startsWith('f.json'),
    );
  }
});

test('scanning a directory picks the newest model of each kind and lists bad files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ml-models-'));
  try {
    const params = shipped.bandwidth!.file.params;
    const older = makeModelFile('bandwidth', params, {
      trainedOn: ['x'],
      now: new Date('2026-01-01T00:00:00Z'),
    });
    const newer = makeModelFile('bandwidth', params, {
      trainedOn: ['y'],
      now: new Date('2026-02-01T00:00:00Z'),
    });
    writeFileSync(join(dir, 'z-old.json'), JSON.stringify(older));
    writeFileSync(join(dir, 'a-new.json'), JSON.stringify(newer));
    writeFileSync(join(dir, 'broken.json'), '{');
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const found = scanModelsDir(dir);
    assert.equal(found.bandwidth?.file.createdAt, newer.createdAt);
    assert.equal(found.lifetime, undefined);
    assert.deepEqual(
      found.rejected.map((r) => r.path),
      [join(dir, 'broken.json')],
    );
    assert.throws(() => scanModelsDir(join(dir, 'missing')), NovaCronError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
