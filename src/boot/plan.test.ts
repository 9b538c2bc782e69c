import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { criticalPathMs, planBootLevels, type PlanInput } from './plan.js';
import { NovaCronError } from '../errors.js';

const c = (name: string, dependsOn: string[] = [], phase: PlanInput['phase'] = 'core'): PlanInput => ({
  name,
  dependsOn,
  phase,
});

test('levels follow dependency depth', () => {
  const plan = planBootLevels([
    c('config', [], 'pre'),
    c('logger', ['config'], 'pre'),
    c('security', ['config']),
    c('database', ['security']),
    c('cache', ['security']),
    c('api', ['database', 'cache'], 'service'),
  ]);
  assert.deepEqual(plan.levels, [['config'], ['logger', 'security'], ['cache', 'database'], ['api']]);
  assert.equal(plan.levelOf.get('api'), 3);
});

test('a cycle is reported with its path before anything starts', () => {
  assert.throws(
    () => planBootLevels([c('a', ['b']), c('b', ['c']), c('c', ['a'])]),
    (e: unknown) =>
      e instanceof NovaCronError && e.code === 'boot_cycle' && /a -> b -> c -> a/.test(e.message),
  );
});

test('a missing dependency names both components', () => {
  assert.throws(
    () => planBootLevels([c('api', ['database'])]),
    (e: unknown) => e instanceof NovaCronError && /"api" depends on "database"/.test(e.message),
  );
});

test('a dependency on a later phase is rejected', () => {
  assert.throws(
    () => planBootLevels([c('logger', ['api'], 'pre'), c('api', [], 'service')]),
    /later phase service/,
  );
});

test('duplicates are rejected', () => {
  assert.throws(() => planBootLevels([c('a'), c('a')]), /registered twice/);
});

test('critical path is the longest weighted chain', () => {
  const comps = [c('a'), c('b', ['a']), c('c', ['a']), c('d', ['b', 'c'])];
  const d = new Map([
    ['a', 10],
    ['b', 50],
    ['c', 20],
    ['d', 5],
  ]);
  assert.equal(criticalPathMs(comps, d), 65);
});

test('property: every dependency lies in an earlier level (random DAGs)', () => {
  fc.assert(
    fc.property(fc.array(fc.array(fc.nat(30), { maxLength: 4 }), { minLength: 1, maxLength: 30 }), (deps) => {
      // Node i may only depend on nodes < i: always a DAG.
      const comps = deps.map((ds, i) =>
        c(`n${i}`, [...new Set(ds.filter((d) => d < i).map((d) => `n${d}`))]),
      );
      const plan = planBootLevels(comps);
      for (const comp of comps) {
        for (const dep of comp.dependsOn) assert.ok(plan.levelOf.get(dep)! < plan.levelOf.get(comp.name)!);
      }
      assert.equal(plan.order.length, comps.length);
    }),
  );
});
