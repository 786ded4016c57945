// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The QEMU debug console port: the 0xE9 readback, output into the shared
// ring, dropping when nobody listens, and the host-side pump.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { FakeHost } from '../../testing/fake-host.js';
import { QemuDebugPort } from './debug-port.js';

const PORT = 0x402;

/** The main thread's instance and a vCPU's, over a structured clone of the descriptor. */
function setup(): { dbg: QemuDebugPort; guest: FakeHost } {
  const desc = QemuDebugPort.describe();
  const dbg = QemuDebugPort.attach(desc, new FakeHost());
  const guest = new FakeHost();
  QemuDebugPort.attach(structuredClone(desc), guest);
  return { dbg, guest };
}

function write(guest: FakeHost, s: string): void {
  for (const c of Buffer.from(s, 'latin1')) guest.pio.write(PORT, 1, c);
}

describe('QemuDebugPort', () => {
  it('claims port 0x402 only and reads back 0xE9', () => {
    const { dbg, guest } = setup();
    assert.equal(dbg.typeName, 'qemu-lpc-debug');
    assert.equal(guest.pio.owner(PORT), 'qemu-lpc-debug');
    assert.equal(guest.pio.owner(0x403), undefined);
    assert.equal(guest.pio.read(PORT, 1), 0xe9);
    assert.equal(guest.pio.read(PORT, 2), 0xffe9);
    assert.equal(guest.pio.read(PORT, 4), 0xffff_ffe9);
    assert.equal(dbg.migrate(), 'empty');
  });

  it('drops output while no consumer is attached', () => {
    const { dbg, guest } = setup();
    write(guest, 'lost');
    assert.equal(dbg.output.length, 0);
    assert.equal(dbg.dropped, 4);
  });

  it('puts the low byte of each write into the ring for the consumer', () => {
    const { dbg, guest } = setup();
    dbg.setSinkAttached(true);
    write(guest, 'SeaBIOS');
    guest.pio.write(PORT, 2, 0x0a21); // "!" (the 0x0a would be port 0x403's)
    guest.pio.write(PORT, 4, 0xffff_ff0a);
    assert.equal(Buffer.from(dbg.output.drain()).toString('latin1'), 'SeaBIOS!\n');
    assert.equal(dbg.dropped, 0);
  });

  it('drops, never blocks, when the ring is full', () => {
    const { dbg, guest } = setup();
    dbg.setSinkAttached(true);
    const n = dbg.output.capacity + 100;
    for (let i = 0; i < n; i++) guest.pio.write(PORT, 1, i & 0xff);
    assert.equal(dbg.output.length, dbg.output.capacity);
    assert.equal(dbg.dropped, 100);
  });

  it('pipes output to a consumer and hands over the rest on close', async () => {
    const { dbg, guest } = setup();
    const got: number[] = [];
    const pipe = dbg.pipeTo((b) => got.push(...b));
    assert.throws(() => dbg.pipeTo(() => {}), /already has a consumer/);
    write(guest, 'one ');
    await new Promise((r) => setTimeout(r, 10));
    write(guest, 'two');
    await pipe.close();
    assert.equal(Buffer.from(got).toString('latin1'), 'one two');
    write(guest, 'x');
    assert.equal(dbg.dropped, 1, 'closed: detached again');
    await pipe.close();
  });

  it('detaches a consumer that fails, and reports the failure on close', async () => {
    const { dbg, guest } = setup();
    const pipe = dbg.pipeTo(() => {
      throw new Error('disk full');
    });
    write(guest, 'a');
    await new Promise((r) => setTimeout(r, 10));
    write(guest, 'b');
    assert.equal(dbg.dropped, 1, 'detached after the failure');
    await assert.rejects(pipe.close(), /disk full/);
    assert.doesNotThrow(() => dbg.pipeTo(() => {}), 'a new consumer may attach');
  });

  it('receives bytes written on another thread', async () => {
    const desc = QemuDebugPort.describe();
    const dbg = QemuDebugPort.attach(desc, new FakeHost());
    const got: number[] = [];
    const pipe = dbg.pipeTo((b) => got.push(...b));
    const w = new Worker(
      `import { workerData } from 'node:worker_threads';
       const { QemuDebugPort } = await import(workerData.dev);
       const { FakeHost } = await import(workerData.host);
       const guest = new FakeHost();
       QemuDebugPort.attach(workerData.desc, guest);
       for (const c of Buffer.from('from a vCPU')) guest.pio.write(0x402, 1, c);`,
      {
        eval: true,
        workerData: {
          desc,
          dev: new URL('./debug-port.js', import.meta.url).href,
          host: new URL('../../testing/fake-host.js', import.meta.url).href,
        },
      },
    );
    await new Promise((resolve, reject) => w.once('exit', resolve).once('error', reject));
    await pipe.close();
    assert.equal(Buffer.from(got).toString('latin1'), 'from a vCPU');
  });

  it('refuses a port outside the I/O space', () => {
    assert.throws(() => QemuDebugPort.describe({ port: 0x10000 }), RangeError);
  });
});
