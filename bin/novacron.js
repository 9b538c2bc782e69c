#!/usr/bin/env node
// Entry point of the `novacron` command: runs the compiled CLI from dist/.
// `npm ci` builds dist/ through the prepare script; run `npm run build` after editing src/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error(
    'novacron: dist/ is missing. Run `npm ci` (or `npm run build`) in the NovaCron checkout first.',
  );
  process.exit(1);
}
await import(main.href);
