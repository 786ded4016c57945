// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Debian's mtools (fetched into .cache/debian) for tests that read FAT
// volumes without mounting them: a fixed environment (no user mtoolsrc,
// C locale) and a test failure naming the command when it fails.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { debianFile } from './debian.js';

const MTOOLS_ENV = { ...process.env, MTOOLSRC: '/dev/null', LC_ALL: 'C' };

/** Run an mtools command (`minfo`, `mdir`, `mtype`); its stdout. */
export function mtool(tool: 'minfo' | 'mdir' | 'mtype', args: string[]): Buffer {
  const r = spawnSync(debianFile('mtools', `usr/bin/${tool}`), args, { env: MTOOLS_ENV });
  assert.equal(r.status, 0, `${tool} ${args.join(' ')} failed: ${r.stderr?.toString()}`);
  return r.stdout;
}
