'use strict';
// The CommonJS entry; src/index.mjs re-exports these same objects for `import`, so both
// entries share one implementation and `instanceof` works across them.
const { DBaudit, DEFAULT_BASE_URL } = require('./client.cjs');
const errors = require('./errors.cjs');
const { Pager } = require('./pagination.cjs');
const { VERSION } = require('./version.cjs');

module.exports = { DBaudit, DEFAULT_BASE_URL, VERSION, Pager, ...errors };
