// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Running a benchmark guest to its halt, shared by bench/run.ts and
// bench/rss-probe.ts.

import type { Machine } from '../lib/propolis/src/vmm/machine.js';

/**
 * Start the machine and wait for the guest's halt; leaves it paused.
 *
 * Works around a race in the vCPU control protocol (see the bench's report):
 * `start()` can miss a vCPU's acknowledgement and never resolve even though
 * the guest runs and halts. So the halt is awaited alongside `start()`, and
 * the `pause()` that follows makes every vCPU acknowledge again, which
 * settles a pending `start()` too.
 */
export async function startAndWait<T>(machine: Machine, halted: Promise<T>): Promise<T> {
  const starting = machine.start();
  const result = await Promise.race([halted, starting.then(() => halted)]);
  await machine.pause();
  await starting;
  return result;
}
