// The simulator's file edge: format detection and finding the Azure side files by name.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NotFoundError, ValidationError } from '../../errors.js';
import { findDurationFile, loadTrace } from './load.js';
import { runSimulation } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'nc-sched-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'flav_map.txt'), '1,0.75 a\n2,3.5 g\n');
writeFileSync(join(dir, 'v1.interval_map.txt'), '0 0\n300 1\n600 2\n');
writeFileSync(join(dir, 'v1.dev.txt'), '300 a,g,|,\n600 g,|,\n');
writeFileSync(join(dir, 'v1.dev.c900.txt'), '300 U1,C0,|,\n600 U0,|,\n');
writeFileSync(join(dir, 'v1.train.txt'), '300 a,|,\n');
writeFileSync(
  join(dir, 'openb_pod_list_x.csv'),
  'name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n' +
    'p0,1000,1024,0,0,,LS,Running,0,100,0\np1,2000,1024,0,0,,LS,Running,50,,50\n',
);
writeFileSync(
  join(dir, 'openb_node_list_all_node.csv'),
  'sn,cpu_milli,memory_mib,gpu,model\nn0,4000,8192,0,\n',
);

describe('loadTrace', () => {
  it('finds flav_map, the interval map and the duration file beside an Azure trace', () => {
    const t = loadTrace(join(dir, 'v1.dev.txt'));
    assert.equal(t.format, 'azure-v1');
    assert.equal(t.files.durations, join(dir, 'v1.dev.c900.txt'));
    assert.deepEqual([...t.trace.departure], [600, Infinity, 600]);
  });
  it('runs without durations when none exist (train)', () => {
    assert.equal(findDurationFile(join(dir, 'v1.train.txt')), undefined);
    const t = loadTrace(join(dir, 'v1.train.txt'));
    assert.deepEqual([...t.trace.departure], [Infinity]);
  });
  it('detects an Alibaba pod list and takes the node list beside it', () => {
    const r = runSimulation({ trace: join(dir, 'openb_pod_list_x.csv'), strategy: 'balanced' });
    assert.equal(r.format, 'alibaba-openb');
    assert.match(r.pool, /1 hosts from/);
    assert.deepEqual(
      r.strategies.map((s) => s.strategy),
      ['balanced', 'first-fit', 'best-fit', 'least-allocated', 'most-allocated'],
    );
    assert.ok(r.strategies.every((s) => s.placed === 2));
  });
  it('rejects unknown formats and missing files', () => {
    writeFileSync(join(dir, 'junk.txt'), 'hello\n');
    assert.throws(() => loadTrace(join(dir, 'junk.txt')), ValidationError);
    assert.throws(() => loadTrace(join(dir, 'nope.txt')), NotFoundError);
    assert.throws(
      () => loadTrace(join(dir, 'v1.dev.txt'), { flavors: join(dir, 'missing.txt') }),
      NotFoundError,
    );
  });
  it('a fixed --hosts limit reports rejections', () => {
    const r = runSimulation({
      trace: join(dir, 'v1.dev.txt'),
      strategy: 'balanced',
      hostCpus: 2,
      hostMemoryGib: 4,
      hosts: 1,
    });
    const b = r.strategies[0]!;
    assert.equal(b.placed + b.rejected, 3);
    assert.ok(b.rejected >= 1);
  });
});
