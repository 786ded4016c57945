// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Real threads on one queue: two workers (vCPU threads) notify queue 0 of
// the same virtio device while this thread plays the driver over shared
// guest memory. No two threads may ever be inside the queue at once, and
// every chain must come back used — a lost notify would leave chains
// behind once the kicks stop.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { GuestMemory } from '../../vmm/memory.js';
import { PciPath } from '../pci/path.js';
import { VIRTIO_ID, VirtioMode } from './bits.js';
import { CTL } from './concurrency-worker.js';
import { F_VERSION_1, FakeCfg, FakeDriverQueue, ModernDriver, VirtioTestHost, pciWindows } from './driver-fake.js';
import { VirtioPciTransport } from './pci.js';

const CHAINS = 20_000;
const SIZE = 64;

describe('virtio queue processing across threads', () => {
  it('serialises two vCPU threads on one queue and loses no notify', async () => {
    const ramSab = new SharedArrayBuffer(1 << 20);
    const mem = GuestMemory.fromBuffers([{ gpa: 0, bytes: new Uint8Array(ramSab) }]);
    const sh = VirtioPciTransport.share(
      { type: VIRTIO_ID.NET, mode: VirtioMode.Modern, features: 0n, queueSizes: [SIZE], configSize: 0 },
      new PciPath(0, 4, 0),
    );
    const host = new VirtioTestHost(mem);
    VirtioPciTransport.attach(
      sh,
      host,
      { configRead: () => 0, configWrite: () => {}, onQueueNotify: () => {} },
      'main',
    );
    const cfg = new FakeCfg(pciWindows(host), 0, 4, 0);
    cfg.enable({ io: false, modern: true });
    const drv = new ModernDriver(host, cfg);
    assert.ok(drv.negotiate(F_VERSION_1));
    const q = FakeDriverQueue.at(mem, SIZE, 0x1000);
    drv.setupQueue(0, q);
    drv.driverOk();

    const ctl = new SharedArrayBuffer(4 * CTL.WORDS);
    const c = new Int32Array(ctl);
    const workers = [0, 1].map(
      (id) =>
        new Worker(new URL('./concurrency-worker.js', import.meta.url), { workerData: { sh, ram: ramSab, ctl, id } }),
    );
    const done = workers.map((w) => once(w, 'message'));
    await Promise.all(workers.map((w) => once(w, 'online')));

    let published = 0;
    let used = 0;
    const deadline = Date.now() + 60_000;
    try {
      while (used < CHAINS) {
        assert.ok(Date.now() < deadline, `stuck with ${published - used} chains unprocessed (${used} used)`);
        let added = false;
        while (published < CHAINS && published - used < SIZE) {
          q.publish(q.addChain([{ addr: 0x9000 + 4 * (published % SIZE), len: 1, write: true }]));
          published++;
          added = true;
        }
        if (added) Atomics.add(c, CTL.KICKS, 1);
        used += q.takeUsed().length;
      }
    } finally {
      Atomics.store(c, CTL.STOP, 1);
      await Promise.all(done);
      await Promise.all(workers.map((w) => w.terminate()));
    }
    assert.equal(used, CHAINS);
    assert.equal(Atomics.load(c, CTL.OVERLAPS), 0, 'two threads were inside the queue at once');
    const passes = [Atomics.load(c, CTL.PASSES), Atomics.load(c, CTL.PASSES + 1)];
    assert.ok(passes[0]! + passes[1]! > 0);
  });
});
