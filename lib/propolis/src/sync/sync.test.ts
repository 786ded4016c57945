// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The shared mutex and byte ring, exercised across real worker threads.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ByteRing } from './byte-ring.js';
import { SharedMutex } from './mutex.js';

// A worker that increments a shared counter non-atomically under the mutex:
// without mutual exclusion, increments would be lost.
const WORKER = `
import { workerData, parentPort } from 'node:worker_threads';
const { SharedMutex } = await import(workerData.mutexUrl);
const m = new SharedMutex(new Int32Array(workerData.lock));
const c = new Int32Array(workerData.counter);
for (let i = 0; i < workerData.n; i++) {
  m.lock();
  const v = c[0];
  for (let j = 0; j < 20; j++) c[1] = j; // widen the race window
  c[0] = v + 1;
  m.unlock();
}
parentPort.postMessage('done');
`;

describe('SharedMutex', () => {
  it('excludes concurrent holders across threads', async () => {
    const lock = new SharedArrayBuffer(4);
    const counter = new SharedArrayBuffer(8);
    const n = 20000;
    const mutexUrl = new URL('./mutex.js', import.meta.url).href;
    const workers = [0, 1, 2].map(() => new Worker(WORKER, { eval: true, workerData: { lock, counter, n, mutexUrl } }));
    // The main thread contends too, as it does for console input.
    const m = new SharedMutex(new Int32Array(lock));
    const c = new Int32Array(counter);
    for (let i = 0; i < n; i++) m.with(() => (c[0] = (c[0] as number) + 1));
    await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
    await Promise.all(workers.map((w) => w.terminate()));
    assert.equal(c[0], 4 * n);
    assert.equal(new Int32Array(lock)[0], 0, 'left unlocked');
  });
});

describe('ByteRing', () => {
  it('keeps order across wrap-around and refuses pushes when full', () => {
    const r = ByteRing.create(8);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 8; i++) assert.equal(r.push(round * 8 + i), true);
      assert.equal(r.push(0xff), false);
      assert.equal(r.space, 0);
      assert.deepEqual(Array.from(r.drain(3)), [round * 8, round * 8 + 1, round * 8 + 2]);
      assert.deepEqual(
        Array.from(r.drain()),
        [3, 4, 5, 6, 7].map((i) => round * 8 + i),
      );
      assert.equal(r.length, 0);
    }
  });

  it('wakes an async consumer when another thread pushes', async () => {
    const r = ByteRing.create(16);
    const url = new URL('./byte-ring.js', import.meta.url).href;
    const w = new Worker(
      `import { workerData } from 'node:worker_threads';
       const { ByteRing } = await import(workerData.url);
       const r = new ByteRing(workerData.sab);
       setTimeout(() => { r.push(0x42); }, 50);`,
      { eval: true, workerData: { sab: r.sab, url } },
    );
    await r.waitReadable();
    assert.deepEqual(Array.from(r.drain()), [0x42]);
    await w.terminate();
  });

  it('requires a power-of-two capacity', () => {
    assert.throws(() => ByteRing.create(12), RangeError);
  });
});
