'use strict';
// The one place the version is read, so User-Agent and the package can never disagree.
exports.VERSION = require('../package.json').version;
