// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Paths of the test guests built by `npm run build` (guests/build.ts), for tests.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Repository root, from dist/lib/propolis/src/testing/. */
export const REPO_ROOT = join(import.meta.dirname, '..', '..', '..', '..', '..');

export function guestRomPath(name: 'hello' | 'smp' | 'pio-bench'): string {
  return join(REPO_ROOT, 'guests', 'out', `${name}.rom`);
}

export function guestRom(name: 'hello' | 'smp' | 'pio-bench'): Uint8Array {
  const p = guestRomPath(name);
  if (!existsSync(p)) throw new Error(`test guest ${p} is missing: run \`npm run build\` first`);
  return new Uint8Array(readFileSync(p));
}
