// `npm run schema`: regenerates config/schema.json, config/novacron.yaml and the key reference in
// docs/configuration.md from the TypeBox schema (src/config/schema.ts), the one source of truth.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatedFiles } from '../src/config/generate.js';

const root = fileURLToPath(new URL('..', import.meta.url));
for (const [rel, content] of await generatedFiles(root)) {
  const path = join(root, rel);
  const before = await readFile(path, 'utf8').catch(() => undefined);
  if (before === content) {
    console.log(`unchanged ${rel}`);
    continue;
  }
  await writeFile(path, content);
  console.log(`wrote     ${rel}`);
}
