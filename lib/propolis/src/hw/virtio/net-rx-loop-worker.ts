// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A dedicated RX thread for a virtio-net device, as net.test.ts runs it
// (and as a machine's I/O thread would): attach this thread's own
// instance over the device's shared state and the shared guest memory,
// then block in `runRxLoop` until the stop word is set. A test host
// stands in for the machine's (MSIs are recorded here, not delivered).
//
// Threading: runs in its own worker_thread; blocking there is the point.

import { parentPort, workerData } from 'node:worker_threads';
import type { DeviceDescriptor } from '../../device.js';
import { GuestMemory } from '../../vmm/memory.js';
import { VirtioTestHost } from './driver-fake.js';
import { PciVirtioNet } from './net.js';

export interface RxLoopWorkerData {
  role: 'virtio-net-rx-loop';
  desc: DeviceDescriptor;
  /** Guest RAM at guest-physical 0. */
  ram: SharedArrayBuffer;
  /** Word 0: non-zero stops the loop. */
  stop: SharedArrayBuffer;
}

const d = workerData as Partial<RxLoopWorkerData> | undefined;
if (d?.role === 'virtio-net-rx-loop' && parentPort) {
  const data = d as RxLoopWorkerData;
  const mem = GuestMemory.fromBuffers([{ gpa: 0, bytes: new Uint8Array(data.ram) }]);
  const host = new VirtioTestHost(mem);
  const dev = PciVirtioNet.attach(data.desc, host);
  parentPort.postMessage({ kind: 'ready' });
  const result = dev.runRxLoop(new Int32Array(data.stop));
  parentPort.postMessage({ kind: 'done', result, msis: host.msis.length });
}
