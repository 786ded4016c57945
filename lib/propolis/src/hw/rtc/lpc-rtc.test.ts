// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The RTC attachment: ports, byte-split wide accesses, instances on two
// threads over one descriptor, the host timer raising IRQ 8, reset and state.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeviceHost } from '../../device.js';
import { PayloadOffers, type Payload } from '../../migrate.js';
import { FakeHost } from '../../testing/fake-host.js';
import { LpcRtc } from './lpc-rtc.js';
import { CmosConfigError } from './pc-cmos.js';

const GIB = 1024 * 1024 * 1024;
const INDEX = 0x70;
const DATA = 0x71;
const IRQ8 = 8;

/** The same FakeHost, presented as the main thread (FakeHost itself says 'vcpu'). */
function onMainThread(h: FakeHost): DeviceHost {
  return Object.assign(Object.create(h) as object, { thread: 'main' as const }) as DeviceHost;
}

function setup(): { main: FakeHost; rtc: LpcRtc; guest: FakeHost; other: FakeHost } {
  const desc = LpcRtc.describe({ lowmem: 3 * GIB, highmem: 3 * GIB, cpus: 4 });
  const main = new FakeHost();
  const rtc = LpcRtc.attach(desc, onMainThread(main));
  const guest = new FakeHost();
  LpcRtc.attach(desc, guest); // vCPU 0's instance
  const other = new FakeHost();
  LpcRtc.attach(desc, other); // vCPU 1's instance
  return { main, rtc, guest, other };
}

function cmos(h: FakeHost, index: number): number {
  h.pio.write(INDEX, 1, index);
  return h.pio.read(DATA, 1);
}

function cmosWrite(h: FakeHost, index: number, v: number): void {
  h.pio.write(INDEX, 1, index);
  h.pio.write(DATA, 1, v);
}

const bcd = (b: number): number => (b >> 4) * 10 + (b & 0xf);

describe('LpcRtc', () => {
  it('claims ports 0x70-0x71 and nothing else', () => {
    const { guest } = setup();
    assert.equal(guest.pio.owner(0x70), 'rtc');
    assert.equal(guest.pio.owner(0x71), 'rtc');
    assert.equal(guest.pio.owner(0x72), undefined);
    assert.equal(guest.pio.owner(0x6f), undefined);
  });

  it('shows the host time and the machine\u2019s memory to every thread', () => {
    const { guest, other } = setup();
    const now = new Date();
    const year = bcd(cmos(guest, 0x32)) * 100 + bcd(cmos(guest, 0x09));
    assert.ok(Math.abs(year - now.getUTCFullYear()) <= 1, `year ${year}`);
    assert.equal(cmos(other, 0x34) | (cmos(other, 0x35) << 8), 0xbf00);
    assert.deepEqual([cmos(other, 0x5b), cmos(other, 0x5c), cmos(other, 0x5d)], [0x00, 0xc0, 0x00]);
    assert.equal(cmos(guest, 0x5f), 3);
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += cmos(guest, i);
    assert.equal((cmos(guest, 0x2e) << 8) | cmos(guest, 0x2f), sum, 'checksum');
    // A value one thread writes, another reads.
    cmosWrite(guest, 0x50, 0xa5);
    assert.equal(cmos(other, 0x50), 0xa5);
  });

  it('applies a UTC offset and refuses bad options', () => {
    const desc = LpcRtc.describe({ lowmem: 32 << 20, highmem: 0, cpus: 1, utcOffsetSeconds: -3600 }, 'rtc-local');
    const rtc = LpcRtc.attach(desc, onMainThread(new FakeHost()));
    const diff = rtc.guestTime().getTime() - Date.now();
    assert.ok(Math.abs(diff + 3600_000) < 2000, `${diff}`);
    assert.equal(rtc.name, 'rtc-local');
    assert.throws(
      () => LpcRtc.describe({ lowmem: 32 << 20, highmem: 0, cpus: 1, utcOffsetSeconds: 0.5 }),
      CmosConfigError,
    );
    assert.throws(() => LpcRtc.describe({ lowmem: 32 << 20, highmem: 0, cpus: 0 }), CmosConfigError);
  });

  it('splits wide accesses into byte cycles', () => {
    const { guest } = setup();
    guest.pio.write(INDEX, 2, (0x3c << 8) | 0x51); // index 0x51, then data 0x3c
    assert.equal(cmos(guest, 0x51), 0x3c);
    guest.pio.write(INDEX, 1, 0x51);
    assert.equal(guest.pio.read(INDEX, 2), 0x3cff, 'index port reads 0xff, data port the byte');
    assert.equal(guest.pio.read(DATA, 4), 0xffffff3c, 'bytes past 0x71 are not ours');
    guest.pio.write(DATA, 4, 0x11223344);
    assert.equal(cmos(guest, 0x51), 0x44);
  });

  it('drives IRQ 8 from register C on any thread', () => {
    const { guest, other } = setup();
    cmosWrite(guest, 0x0b, 0x02 | 0x40); // PIE, 1024 Hz
    cmos(guest, 0x0c); // drop what was pending: the line is low
    const deadline = Date.now() + 1000;
    while (!other.lines.get(IRQ8)?.level && Date.now() < deadline) cmos(other, 0x0a); // poll register A
    assert.equal(other.lines.get(IRQ8)?.level, true, 'the polling thread raised the line');
    assert.equal(cmos(guest, 0x0c) & 0xc0, 0xc0, 'IRQF | PF');
    assert.equal(guest.lines.get(IRQ8)?.level, false, 'reading C lowered it');
  });

  it('raises IRQ 8 from the host timer without guest accesses', async () => {
    const { main, rtc, guest } = setup();
    rtc.start();
    try {
      cmosWrite(guest, 0x0a, 0x2a); // 64 Hz
      cmosWrite(guest, 0x0b, 0x02 | 0x40);
      cmos(guest, 0x0c);
      // FakeHost lines are per host (no wired-OR across them): the main
      // thread's line shows what the timer did, `irqLevel` the shared level.
      const line = main.lines.get(IRQ8)!;
      const before = line.history.filter((l) => l).length;
      await sleep(60);
      assert.equal(rtc.irqLevel, true, 'raised by the timer');
      let irqs = 0;
      // Acknowledge like an interrupt handler: read C whenever the line is up.
      const end = Date.now() + 250;
      while (Date.now() < end) {
        if (rtc.irqLevel) {
          irqs++;
          cmos(guest, 0x0c);
        }
        await sleep(2);
      }
      assert.ok(irqs >= 8 && irqs <= 20, `about 16 interrupts at 64 Hz in 250 ms, got ${irqs}`);
      assert.ok(line.history.filter((l) => l).length - before >= 8, 'the timer raised most of them');
      // Disabled: the line stays low.
      cmosWrite(guest, 0x0b, 0x02);
      cmos(guest, 0x0c);
      await sleep(40);
      assert.equal(rtc.irqLevel, false);
    } finally {
      rtc.halt();
    }
  });

  it('raises the update interrupt once a second', async () => {
    const { main, rtc, guest } = setup();
    rtc.start();
    try {
      cmosWrite(guest, 0x0b, 0x02 | 0x10); // UIE
      cmos(guest, 0x0c);
      await sleep(1100);
      assert.equal(main.lines.get(IRQ8)?.level, true);
      assert.equal(cmos(guest, 0x0c) & 0xb0, 0x80 | 0x10, 'IRQF | UF (PF runs too, without PIE)');
    } finally {
      rtc.halt();
    }
  });

  it('stops the timer when paused', async () => {
    const { main, rtc, guest } = setup();
    rtc.start();
    rtc.pause();
    cmosWrite(guest, 0x0a, 0x2a);
    cmosWrite(guest, 0x0b, 0x02 | 0x40);
    cmos(guest, 0x0c);
    await sleep(50);
    assert.notEqual(main.lines.get(IRQ8)?.level, true, 'no timer while paused');
    rtc.resume();
    try {
      await sleep(50);
      assert.equal(main.lines.get(IRQ8)?.level, true, 'the resumed timer raised it');
    } finally {
      rtc.halt();
    }
  });

  it('keeps time and RAM over a machine reset but drops interrupt enables', () => {
    const { rtc, guest } = setup();
    cmosWrite(guest, 0x0f, 0x0a); // shutdown status, read by firmware after a reset
    cmosWrite(guest, 0x0b, 0x02 | 0x70);
    rtc.reset();
    assert.equal(cmos(guest, 0x0f), 0x0a);
    assert.equal(cmos(guest, 0x0b), 0x02);
    assert.equal(rtc.irqLevel, false);
    assert.ok(Math.abs(rtc.guestTime().getTime() - Date.now()) < 2000);
  });

  it('round-trips its state through export/import', () => {
    const a = setup();
    cmosWrite(a.guest, 0x0b, 0x80 | 0x02); // SET: hold the time registers
    cmosWrite(a.guest, 0x09, 0x77);
    cmosWrite(a.guest, 0x32, 0x19);
    cmosWrite(a.guest, 0x0b, 0x02); // 1977
    cmosWrite(a.guest, 0x60, 0x42);
    const state = JSON.parse(JSON.stringify(a.rtc.migrate().export())) as Payload[];
    const b = setup();
    b.rtc.migrate().import(new PayloadOffers(state));
    assert.equal(cmos(b.guest, 0x60), 0x42);
    assert.equal(b.rtc.guestTime().getUTCFullYear(), 1977);
    assert.equal(cmos(b.other, 0x09), 0x77);
  });

  it('answers hostile accesses without throwing and stays usable', () => {
    const { guest } = setup();
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const sizes = [1, 2, 4] as const;
    for (let i = 0; i < 5000; i++) {
      const port = 0x70 + rnd(2);
      const size = sizes[rnd(3)]!;
      if (rnd(2)) guest.pio.write(port, size, (rnd(0x10000) << 16) | rnd(0x10000));
      else {
        const v = guest.pio.read(port, size);
        assert.ok(v >= 0 && v <= 0xffffffff);
      }
    }
    cmosWrite(guest, 0x0a, 0x26);
    cmosWrite(guest, 0x0b, 0x02);
    cmos(guest, 0x0c);
    cmosWrite(guest, 0x40, 0x99);
    assert.equal(cmos(guest, 0x40), 0x99);
    assert.equal(cmos(guest, 0x0d), 0x80);
  });
});
