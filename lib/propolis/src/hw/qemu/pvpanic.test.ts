// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The pvpanic device: capabilities readback, event counters shared between
// threads, and the host callback on the main thread.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { FakeHost } from '../../testing/fake-host.js';
import { QemuPvpanic, type PvpanicCounts } from './pvpanic.js';

const PORT = 0x505;
const PANICKED = 1;
const CRASH_LOADED = 2;

function setup(enableIsa = true): { pv: QemuPvpanic; guest: FakeHost } {
  const desc = QemuPvpanic.describe({ enableIsa });
  const pv = QemuPvpanic.attach(desc, new FakeHost());
  const guest = new FakeHost();
  QemuPvpanic.attach(structuredClone(desc), guest);
  return { pv, guest };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('QemuPvpanic', () => {
  it('reads 0b11: both events are understood', () => {
    const { pv, guest } = setup();
    assert.equal(pv.typeName, 'qemu-pvpanic');
    assert.equal(guest.pio.read(PORT, 1), 0b11);
    assert.equal(guest.pio.read(PORT, 2), 0xff03);
    assert.equal(guest.pio.read(PORT, 4), 0xffff_ff03);
    assert.equal(pv.migrate(), 'empty');
  });

  it('counts each event bit of a write; other bits and zero count nothing', () => {
    const { pv, guest } = setup();
    guest.pio.write(PORT, 1, PANICKED);
    guest.pio.write(PORT, 1, CRASH_LOADED);
    guest.pio.write(PORT, 1, PANICKED | CRASH_LOADED);
    guest.pio.write(PORT, 1, 0);
    guest.pio.write(PORT, 1, 0xfc);
    guest.pio.write(PORT, 4, 0xffff_ff00);
    assert.deepEqual(pv.counts(), { panicked: 2, crashLoaded: 2 });
  });

  it('without enable_isa claims no port', () => {
    const { pv, guest } = setup(false);
    assert.equal(guest.pio.owner(PORT), undefined);
    assert.equal(guest.pio.read(PORT, 1), 0xff);
    guest.pio.write(PORT, 1, PANICKED);
    assert.deepEqual(pv.counts(), { panicked: 0, crashLoaded: 0 });
  });

  it('calls back on the main thread with totals and what is new, until stopped', async () => {
    const { pv, guest } = setup();
    const calls: [PvpanicCounts, PvpanicCounts][] = [];
    const stop = pv.onPanic((c, a) => calls.push([c, a]));
    assert.throws(() => pv.onPanic(() => {}), /already registered/);
    guest.pio.write(PORT, 1, PANICKED);
    await tick();
    guest.pio.write(PORT, 1, PANICKED | CRASH_LOADED);
    await tick();
    assert.deepEqual(calls, [
      [
        { panicked: 1, crashLoaded: 0 },
        { panicked: 1, crashLoaded: 0 },
      ],
      [
        { panicked: 2, crashLoaded: 1 },
        { panicked: 1, crashLoaded: 1 },
      ],
    ]);
    stop();
    guest.pio.write(PORT, 1, PANICKED);
    await tick();
    assert.equal(calls.length, 2, 'no calls after stop');
    const again: PvpanicCounts[] = [];
    pv.onPanic((c) => again.push(c));
    guest.pio.write(PORT, 1, CRASH_LOADED);
    await tick();
    pv.halt();
    guest.pio.write(PORT, 1, CRASH_LOADED);
    await tick();
    assert.deepEqual(again, [{ panicked: 3, crashLoaded: 2 }]);
  });

  it('hears a panic reported on another thread', async () => {
    const desc = QemuPvpanic.describe({ enableIsa: true });
    const pv = QemuPvpanic.attach(desc, new FakeHost());
    const heard = new Promise<PvpanicCounts>((resolve) => {
      const stop = pv.onPanic((c) => {
        stop();
        resolve(c);
      });
    });
    const w = new Worker(
      `import { workerData } from 'node:worker_threads';
       const { QemuPvpanic } = await import(workerData.dev);
       const { FakeHost } = await import(workerData.host);
       const guest = new FakeHost();
       QemuPvpanic.attach(workerData.desc, guest);
       guest.pio.write(0x505, 1, 1);`,
      {
        eval: true,
        workerData: {
          desc,
          dev: new URL('./pvpanic.js', import.meta.url).href,
          host: new URL('../../testing/fake-host.js', import.meta.url).href,
        },
      },
    );
    assert.deepEqual(await heard, { panicked: 1, crashLoaded: 0 });
    await w.terminate();
  });
});
