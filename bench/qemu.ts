// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The peer every comparison runs against: QEMU from PATH, installing
// Debian's qemu-system-x86 when it is missing. Shared by the bench sections.

import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export const QEMU = 'qemu-system-x86_64';

export class PeerUnavailableError extends Error {
  readonly code = 'BENCH_PEER';
}

export function onPath(cmd: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

/** QEMU from PATH, installing Debian's package when it is missing. */
export function findQemu(log: (s: string) => void): string {
  const found = onPath(QEMU);
  if (found) return found;
  log(`bench: ${QEMU} is not on PATH; installing Debian's qemu-system-x86 (apt-get install -y qemu-system-x86)\n`);
  const r = spawnSync('apt-get', ['install', '-y', 'qemu-system-x86'], {
    encoding: 'utf8',
    timeout: 15 * 60_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const again = onPath(QEMU);
  if (r.status === 0 && again) return again;
  const out = `${r.stderr}\n${r.stdout}`.trim();
  const why = r.error ? r.error.message : `status ${r.status}: ${out.length > 600 ? `…${out.slice(-600)}` : out}`;
  throw new PeerUnavailableError(
    `${QEMU} is needed as the peer to compare against and could not be installed ` +
      `(apt-get install -y qemu-system-x86 failed: ${why}); install it and run the bench again`,
  );
}
