// Build resolver.js into a component: node componentize.mjs <wit-dir> <out.wasm>
//
// The `http` and `fetch-event` features are disabled: the gateway links no `wasi:http`.

import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const [witPath, out] = process.argv.slice(2);
if (!witPath || !out) {
  console.error('usage: node componentize.mjs <wit-dir> <out.wasm>');
  process.exit(2);
}

const { component } = await componentize({
  sourcePath: fileURLToPath(new URL('./resolver.js', import.meta.url)),
  witPath: resolve(witPath),
  worldName: 'http-resolver',
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
