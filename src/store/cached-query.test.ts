import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cachedQuery } from './cached-query.js';
import type { RepoContext } from './codec.js';
import { openStore } from './store.js';

test('cachedQuery compiles a statement once per key and reuses its text with new parameters', async () => {
  const store = await openStore({
    type: 'sqlite',
    path: ':memory:',
    dataDir: '/tmp',
    host: '',
    port: 0,
    database: '',
    user: '',
    password: '',
    poolSize: 1,
    ssl: false,
  });
  try {
    const statements = new Map<string, string>();
    const ctx: RepoContext = {
      kind: 'sqlite',
      now: () => new Date(),
      target: ':memory:',
      inTransaction: false,
      atomically: (fn) => fn(store.db),
      statements,
    };
    const row = (id: string, node: string) => ({
      node_id: node,
      cpus: id.length,
      memory_mib: 64,
      disk_mib: 0,
      allocations: 1,
    });
    const insert = (r: ReturnType<typeof row>) =>
      cachedQuery(
        store.db,
        ctx,
        'na.insert',
        () => store.db.insertInto('node_allocated').values(r),
        Object.values(r),
      );
    await insert(row('a', 'n1'));
    assert.deepEqual([...statements.keys()], ['na.insert']);
    await insert(row('bbb', 'n2'));
    const read = (node: string) =>
      cachedQuery(
        store.db,
        ctx,
        'na.get',
        () => store.db.selectFrom('node_allocated').selectAll().where('node_id', '=', node),
        [node],
      );
    assert.equal((await read('n1')).rows[0]?.cpus, 1);
    assert.equal((await read('n2')).rows[0]?.cpus, 3, 'cached text, new parameter');
    // Parameters that are not Kysely's, in its order: run as built, never cached.
    await cachedQuery(
      store.db,
      ctx,
      'na.wrong',
      () => store.db.selectFrom('node_allocated').selectAll().where('node_id', '=', 'n1'),
      ['n2'],
    );
    assert.equal(statements.has('na.wrong'), false);
  } finally {
    await store.close();
  }
});
