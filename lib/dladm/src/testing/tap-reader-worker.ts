// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A worker that does what a virtio-net RX thread does with a tap: adopt the
// tap from its handle, block in poll until a frame or a wake-up arrives, and
// read frames. It posts each frame (vnet header included) to its parent and
// exits when the wake eventfd fires. Used by tap.test.ts.
//
// Threading: runs on its own worker thread; blocking there is the point.

import { parentPort, workerData } from 'node:worker_threads';

import { eventfdRead } from '../../../kvm/src/libc.js';
import { Tap, TapReady, type TapHandle } from '../tap.js';

const { handle, wakeFd } = workerData as { handle: TapHandle; wakeFd: number };
const tap = Tap.adopt(handle);
const buf = new Uint8Array(tap.vnetHdrLen + 65550);

for (;;) {
  const ready = tap.waitReadable(5000, wakeFd);
  if (ready === 0) {
    parentPort?.postMessage({ kind: 'timeout' });
    break;
  }
  if (ready & TapReady.Readable) {
    let n: number;
    while ((n = tap.recv(buf)) > 0) parentPort?.postMessage({ kind: 'frame', bytes: buf.slice(0, n) });
    if (n < 0) parentPort?.postMessage({ kind: 'error', errno: -n });
  }
  if (ready & TapReady.Gone) {
    parentPort?.postMessage({ kind: 'gone' });
    break;
  }
  if (ready & TapReady.Wake) {
    eventfdRead(wakeFd);
    break;
  }
}
tap.close(); // adopted: forgets the fd, the parent closes it
parentPort?.postMessage({ kind: 'done' });
