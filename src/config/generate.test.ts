import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { defaultConfig } from './defaults.js';
import { generatedFiles, GENERATED_FILES } from './generate.js';
import { resolveConfig } from './loader.js';
import { parseYamlConfig } from './yaml-file.js';
import { leaves } from './schema-walk.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('committed generated files are up to date (config/schema.json, config/novacron.yaml, docs reference)', async () => {
  for (const [rel, expected] of await generatedFiles(root)) {
    const committed = await readFile(join(root, rel), 'utf8');
    assert.ok(
      committed === expected,
      `${rel} is stale: the schema in src/config/schema.ts changed. Run \`npm run schema\` and commit the result.`,
    );
  }
});

test('config/novacron.yaml loads to exactly the defaults and documents every key', async () => {
  const text = await readFile(join(root, GENERATED_FILES.example), 'utf8');
  const loaded = resolveConfig({ parsed: parseYamlConfig(text, 'novacron.yaml'), env: {}, flags: {} });
  assert.deepEqual(loaded.config, defaultConfig());
  for (const leaf of leaves()) {
    assert.equal(loaded.sources.get(leaf.path), 'file', `${leaf.path} is written in the example`);
  }
  assert.match(text, /NOVACRON_API__REST_PORT/);
});

test('config/schema.json is the published schema: every key has a default and a description', async () => {
  const schema = JSON.parse(await readFile(join(root, GENERATED_FILES.schema), 'utf8')) as {
    $schema: string;
    properties: Record<string, unknown>;
  };
  assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  for (const leaf of leaves()) {
    assert.notEqual(leaf.schema.default, undefined, `${leaf.path} has a default`);
    assert.ok(leaf.schema.description, `${leaf.path} has a description`);
  }
  const docs = await readFile(join(root, GENERATED_FILES.docs), 'utf8');
  for (const leaf of leaves()) assert.ok(docs.includes(`\`${leaf.path}\``), `docs list ${leaf.path}`);
  assert.ok(parse(JSON.stringify(schema.properties)));
});
