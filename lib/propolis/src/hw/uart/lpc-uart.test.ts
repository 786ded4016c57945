// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The UART attachment: port decoding, the IRQ line, console output and input.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PayloadOffers } from '../../migrate.js';
import { FakeHost } from '../../testing/fake-host.js';
import { LpcUart } from './lpc-uart.js';

function setup(): { host: FakeHost; uart: LpcUart; guest: FakeHost } {
  const desc = LpcUart.describe('com1');
  const host = new FakeHost();
  const uart = LpcUart.attach(desc, host); // host side (main thread)
  const guest = new FakeHost();
  LpcUart.attach(desc, guest); // a vCPU thread's instance over the same state
  return { host, uart, guest };
}

describe('LpcUart', () => {
  it('claims COM1 ports 0x3f8-0x3ff and nothing else', () => {
    const { guest } = setup();
    assert.equal(guest.pio.owner(0x3f8), 'com1');
    assert.equal(guest.pio.owner(0x3ff), 'com1');
    assert.equal(guest.pio.owner(0x400), undefined);
    assert.equal(guest.pio.owner(0x3f7), undefined);
  });

  it('sends guest output to the console ring when a console is attached, drops it otherwise', () => {
    const { uart, guest } = setup();
    guest.pio.write(0x3f8, 1, 0x41);
    assert.equal(uart.output.length, 0, 'no console: autodiscard');
    assert.equal(guest.pio.read(0x3fd, 1) & 0x20, 0x20, 'THRE stays set while discarding');
    uart.setSinkAttached(true);
    for (const c of Buffer.from('hi')) guest.pio.write(0x3f8, 1, c);
    assert.equal(Buffer.from(uart.output.drain()).toString(), 'hi');
  });

  it('applies backpressure when the console ring is full', () => {
    const { uart, guest } = setup();
    uart.setSinkAttached(true);
    guest.pio.write(0x3fa, 1, 0x01); // FIFOs on
    let written = 0;
    while (guest.pio.read(0x3fd, 1) & 0x20 && written < 100000) {
      guest.pio.write(0x3f8, 1, written & 0xff);
      written++;
    }
    assert.ok(written >= uart.output.capacity, `filled the ring (${written})`);
    assert.equal(guest.pio.read(0x3fd, 1) & 0x20, 0, 'THRE clear: the guest must wait');
    const first = uart.output.drain();
    uart.pump();
    assert.equal(guest.pio.read(0x3fd, 1) & 0x20, 0x20, 'drained: THRE again');
    const all = new Uint8Array([...first, ...uart.output.drain()]);
    assert.equal(all.length, written);
    all.forEach((b, i) => assert.equal(b, i & 0xff));
  });

  it('delivers console input and drives IRQ 4 with the interrupt state', () => {
    const { host, uart, guest } = setup();
    guest.pio.write(0x3f9, 1, 0x01); // IER.ERBFI
    assert.equal(uart.sendInput(Buffer.from('ok')), 1, 'non-FIFO mode takes one byte');
    assert.equal(host.lines.get(4)?.level, true, 'the host instance raised IRQ 4');
    assert.equal(guest.pio.read(0x3f8, 1), 'o'.charCodeAt(0));
    assert.equal(guest.lines.get(4)?.level, false, 'reading RBR lowered it');
  });

  it('answers wide accesses without crashing and resets to power-on state', () => {
    const { uart, guest } = setup();
    guest.pio.write(0x3ff, 4, 0xdeadbeef);
    assert.equal(guest.pio.read(0x3ff, 1), 0xef);
    assert.equal(guest.pio.read(0x3ff, 2) & 0xff, 0xef);
    uart.reset();
    assert.equal(guest.pio.read(0x3ff, 1), 0);
  });

  it('round-trips its state through export/import', () => {
    const { uart, guest } = setup();
    guest.pio.write(0x3ff, 1, 0x5a);
    uart.sendInput(Buffer.from('x'));
    const state = uart.migrate().export();
    const b = setup();
    b.uart.migrate().import(new PayloadOffers(JSON.parse(JSON.stringify(state))));
    assert.equal(b.guest.pio.read(0x3ff, 1), 0x5a);
    assert.equal(b.guest.pio.read(0x3f8, 1), 'x'.charCodeAt(0));
  });
});
