// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A worker for concurrency.test.ts: one "vCPU thread" with its own
// instance of a virtio device over shared state and shared guest memory.
// It notifies queue 0 whenever the test bumps the kick counter, and its
// device records any moment two threads were inside the same queue.
//
// Threading: runs in a worker_thread; talks to the test only through
// the shared control words and one final message.

import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { GuestMemory } from '../../vmm/memory.js';
import { VirtioTestHost } from './driver-fake.js';
import { VirtioPciTransport, type VirtioDevice, type VirtioPciShared } from './pci.js';
import type { SplitQueue } from './queue.js';

/** Control words shared with the test. */
export const CTL = { KICKS: 0, STOP: 1, INSIDE: 2, OVERLAPS: 3, PASSES: 4, WORDS: 8 } as const;

interface Data {
  sh: VirtioPciShared;
  ram: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  id: number;
}

class CountingDevice implements VirtioDevice {
  constructor(
    private readonly c: Int32Array,
    private readonly id: number,
  ) {}

  configRead(): number {
    return 0;
  }
  configWrite(): void {}
  onQueueNotify(q: SplitQueue, m: GuestMemory): void {
    const c = this.c;
    if (Atomics.add(c, CTL.INSIDE, 1) !== 0) Atomics.add(c, CTL.OVERLAPS, 1);
    Atomics.add(c, CTL.PASSES + this.id, 1);
    let chain;
    while ((chain = q.popAvail(m)) !== undefined) {
      chain.writeU8(m, 0, 0x80 | this.id);
      q.pushUsed(m, chain.head, 1);
    }
    Atomics.sub(c, CTL.INSIDE, 1);
  }
}

// Only when run as a worker (the test imports CTL from this module too).
if (!isMainThread && parentPort) {
  const { sh, ram, ctl, id } = workerData as Data;
  const c = new Int32Array(ctl);
  const mem = GuestMemory.fromBuffers([{ gpa: 0, bytes: new Uint8Array(ram) }]);
  const t = VirtioPciTransport.attach(sh, new VirtioTestHost(mem), new CountingDevice(c, id), `worker-${id}`);
  let seen = 0;
  while (Atomics.load(c, CTL.STOP) === 0) {
    const k = Atomics.load(c, CTL.KICKS);
    if (k !== seen) {
      seen = k;
      t.notify(0);
    }
  }
  parentPort.postMessage('done');
}
