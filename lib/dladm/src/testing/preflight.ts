// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// What tests of real links need, checked once with one clear failure: root
// (taps, namespaces, bridges need CAP_NET_ADMIN and CAP_SYS_ADMIN),
// /dev/net/tun, and iproute2. CI runs these tests as root; they fail, never
// skip, elsewhere, because a skipped network test proves nothing.
//
// Threading: main thread.

import { accessSync, constants, existsSync } from 'node:fs';

import { IP_BINARY } from '../link.js';
import { TUN_DEVICE } from '../tap.js';

export function requireNetAdmin(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) {
    problems.push(
      `this process runs as uid ${process.getuid?.()}; these tests create taps and namespaces and need root`,
    );
  }
  try {
    accessSync(TUN_DEVICE, constants.R_OK | constants.W_OK);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    problems.push(
      `${TUN_DEVICE} is not usable (${(e as Error).message})${missing ? '; load the tun module (modprobe tun)' : ''}`,
    );
  }
  if (!existsSync(IP_BINARY)) problems.push('iproute2 `ip` is not installed (apt-get install iproute2)');
  if (problems.length > 0) {
    throw new Error(`network tests cannot run here:\n  ${problems.join('\n  ')}`);
  }
}
