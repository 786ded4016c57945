// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A worker thread for the NVMe concurrency test: it attaches its own
// instance of the controller from the descriptor (as a vCPU worker does),
// then submits writes on its submission queue, ringing the doorbell after
// each, and now and then runs another thread's queue as an I/O thread
// would. Guest RAM and the disk are SharedArrayBuffers.
//
// Threading: runs in a worker_thread; posts 'done' (or an error) when finished.

import { parentPort, workerData } from 'node:worker_threads';
import type { DeviceDescriptor } from '../../device.js';
import { FakeHost } from '../../testing/fake-host.js';
import { PciNvme, setNvmeBackendOpener } from './pci-nvme.js';
import { memDiskOpener, sharedGuestMemory } from './driver-fake.js';

export interface NvmeThreadJob {
  desc: DeviceDescriptor;
  ram: SharedArrayBuffer;
  sqid: number;
  sqBase: number;
  sqSize: number;
  /** Another SQ whose processing this thread also triggers. */
  otherSqid: number;
  count: number;
  firstLba: number;
  /** Guest address of `count` 512-byte source blocks. */
  data: number;
}

const job = workerData as NvmeThreadJob;
try {
  setNvmeBackendOpener(memDiskOpener);
  const host = new FakeHost(16);
  Object.defineProperty(host, 'mem', { value: sharedGuestMemory(job.ram) });
  const dev = PciNvme.attach(job.desc, host);
  const ram = new DataView(job.ram);
  for (let i = 0; i < job.count; i++) {
    const slot = job.sqBase + 64 * (i % job.sqSize);
    for (let b = 0; b < 64; b += 4) ram.setUint32(slot + b, 0, true);
    ram.setUint32(slot, 0x01 | (i << 16), true); // WRITE, CID i
    ram.setUint32(slot + 4, 1, true); // NSID
    ram.setUint32(slot + 24, job.data + 512 * i, true); // PRP1
    ram.setUint32(slot + 40, job.firstLba + i, true); // SLBA
    dev.controller.regWrite(0x1000 + 8 * job.sqid, 4, (i + 1) % job.sqSize);
    if (i % 7 === 0) dev.processQueue(job.otherSqid);
  }
  dev.halt();
  parentPort?.postMessage('done');
} catch (e) {
  parentPort?.postMessage({ error: String((e as Error).stack ?? e) });
}
