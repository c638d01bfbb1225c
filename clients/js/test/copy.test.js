// readreceiptd embeds its demo page from cmd/readreceiptd/web (go:embed
// cannot reach outside the package), so the page's copy of the client lives
// there. clients/js/index.js is the source: the copy must be the same file.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './server.js';

test('cmd/readreceiptd/web/readreceipt-client.js is a copy of clients/js/index.js', () => {
  const src = readFileSync(join(repoRoot, 'clients/js/index.js'), 'utf8');
  const copy = readFileSync(join(repoRoot, 'cmd/readreceiptd/web/readreceipt-client.js'), 'utf8');
  assert.ok(src === copy, 'the copies differ: run cp clients/js/index.js cmd/readreceiptd/web/readreceipt-client.js');
});
