// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Runs every compiled `*.test.js` under dist/ with Node's test runner.
// Arguments filter test files by substring (`npm test -- uart`).
//
// Tests that need KVM do not skip when /dev/kvm is missing: the check below
// fails the whole run first, with a message that says what is wrong.

import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const dist = join(root, 'dist');

function find(dir: string, out: string[]): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) find(p, out);
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

try {
  accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
} catch (e) {
  console.error(
    `error: /dev/kvm is not usable (${(e as Error).message}).\n` +
      'The test suite boots real guests under KVM and cannot run without it; ' +
      'run it as a user with read/write access to /dev/kvm on a host with KVM.',
  );
  process.exit(1);
}

const filters = process.argv.slice(2);
const files = find(dist, [])
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`error: no test files matched ${filters.join(', ') || '(all)'}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
