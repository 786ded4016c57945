// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The RX poller of a virtio-net device whose frames are moved by the main
// thread (net.ts, "RX and who waits"): a worker that only waits. While the
// device's ARMED word is set it blocks in poll(2) on the tap fd; when the
// tap becomes readable it clears ARMED (so it does not spin while the main
// thread catches up) and sets READY, which the main thread's instance
// awaits with Atomics.waitAsync before running an RX pass. It touches no
// guest memory and no device state but those words; it never reads the
// tap. It exits when STOP is set (seen within one RX_WAIT_SLICE_MS) or the
// tap is gone (GONE set, READY raised so the main thread notices).
//
// Threading: runs on its own worker_thread; blocking is its job.

import { workerData } from 'node:worker_threads';
import { Tap, TapReady, type TapHandle } from '../../../../dladm/src/index.js';
import { NW, RX_WAIT_SLICE_MS } from './net-bits.js';

export interface RxPollerData {
  role: 'virtio-net-rx-poller';
  tap: TapHandle;
  /** The device's NW words. */
  words: SharedArrayBuffer;
}

function run(d: RxPollerData): void {
  const w = new Int32Array(d.words);
  const tap = Tap.adopt(d.tap);
  const signal = (): void => {
    Atomics.store(w, NW.READY, 1);
    Atomics.notify(w, NW.READY);
  };
  while (Atomics.load(w, NW.STOP) === 0) {
    if (Atomics.load(w, NW.ARMED) === 0) {
      Atomics.wait(w, NW.ARMED, 0, RX_WAIT_SLICE_MS);
      continue;
    }
    const r = tap.waitReadable(RX_WAIT_SLICE_MS);
    if (r & TapReady.Gone) {
      Atomics.store(w, NW.GONE, 1);
      signal();
      break;
    }
    if (r & TapReady.Readable) {
      Atomics.store(w, NW.ARMED, 0);
      signal();
    }
  }
  tap.close(); // adopted: forgets the fd, the device's owner closes it
}

// Only as the poller (a vCPU worker importing net.ts never imports this module, but be sure).
const d = workerData as Partial<RxPollerData> | undefined;
if (d?.role === 'virtio-net-rx-poller') run(d as RxPollerData);
