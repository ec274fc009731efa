// The package's two entries: `import` and `require` give the same objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import * as esm from '@dbaudit/sdk';

const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));

test('import and require resolve to one implementation', () => {
  const cjs = require('@dbaudit/sdk');
  assert.deepEqual(Object.keys(esm).sort(), Object.keys(cjs).sort());
  for (const name of Object.keys(cjs)) assert.equal(esm[name], cjs[name], name);
  const client = new cjs.DBaudit({ apiKey: 'k' });
  assert.ok(client instanceof esm.DBaudit);
  assert.equal(typeof client.databases.list, 'function');
});

test('zero runtime dependencies; exports has import and require', () => {
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.name, '@dbaudit/sdk');
  assert.ok(pkg.exports['.'].import && pkg.exports['.'].require);
  assert.equal(esm.VERSION, pkg.version);
});
