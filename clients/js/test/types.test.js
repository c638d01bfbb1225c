// index.d.ts describes the client as apps use it: test/types/usage.ts, SDK-
// style code with the misuse it must refuse, compiles with tsc --strict.

import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

test('index.d.ts: SDK-style code type-checks, misuse does not', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const project = fileURLToPath(new URL('./types/tsconfig.json', import.meta.url));
  try {
    execFileSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    throw new Error(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});
