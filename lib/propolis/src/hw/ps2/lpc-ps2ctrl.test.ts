// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PS/2 controller attachment: ports, IRQ pulses, reset requests,
// host-side typing and mouse on the main thread with a vCPU thread's
// instance reading, byte-split wide accesses, hostile accesses and state.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeviceHost } from '../../device.js';
import { PayloadOffers, type Payload } from '../../migrate.js';
import { FakeHost } from '../../testing/fake-host.js';
import { LpcPs2Ctrl, Ps2HostInputError } from './lpc-ps2ctrl.js';
import type { Ps2Key } from './scancodes.js';

const DATA = 0x60;
const STATUS = 0x64;
const OBF = 0x01;
const AUXB = 0x20;

/** The same FakeHost, presented as the main thread (FakeHost itself says 'vcpu'). */
function onMainThread(h: FakeHost): DeviceHost {
  return Object.assign(Object.create(h) as object, { thread: 'main' as const }) as DeviceHost;
}

function setup(): { main: FakeHost; ps2: LpcPs2Ctrl; guest: FakeHost } {
  const desc = LpcPs2Ctrl.describe();
  const main = new FakeHost();
  const ps2 = LpcPs2Ctrl.attach(desc, onMainThread(main));
  const guest = new FakeHost();
  LpcPs2Ctrl.attach(desc, guest);
  return { main, ps2, guest };
}

function drain(h: FakeHost): number[] {
  const out: number[] = [];
  for (let i = 0; i < 1000 && h.pio.read(STATUS, 1) & OBF; i++) out.push(h.pio.read(DATA, 1));
  return out;
}

function command(h: FakeHost, cmd: number, arg?: number): number[] {
  h.pio.write(STATUS, 1, cmd);
  if (arg !== undefined) h.pio.write(DATA, 1, arg);
  return drain(h);
}

/** Set-1 make codes back to characters (lowercase letters, digits, space, Enter, shifted '!'), for checking typed text. */
function decodeSet1(codes: number[]): string {
  const rows: [number, string][] = [
    [0x02, '1234567890'],
    [0x10, 'qwertyuiop'],
    [0x1e, 'asdfghjkl'],
    [0x2c, 'zxcvbnm'],
  ];
  let shift = false;
  let out = '';
  for (const c of codes) {
    if (c === 0x2a) shift = true;
    else if (c === 0xaa) shift = false;
    else if (c === 0x39) out += ' ';
    else if (c === 0x1c) out += '\n';
    else if (c < 0x80) {
      for (const [base, chars] of rows) {
        if (c >= base && c < base + chars.length) {
          const ch = chars[c - base] as string;
          out += shift ? (ch === '1' ? '!' : ch.toUpperCase()) : ch;
        }
      }
    }
  }
  return out;
}

describe('LpcPs2Ctrl', () => {
  it('claims ports 0x60 and 0x64 only', () => {
    const { guest } = setup();
    assert.equal(guest.pio.owner(0x60), 'lpc-ps2ctrl');
    assert.equal(guest.pio.owner(0x64), 'lpc-ps2ctrl');
    for (const p of [0x5f, 0x61, 0x62, 0x63, 0x65]) assert.equal(guest.pio.owner(p), undefined);
  });

  it('brings keyboard and controller up the way firmware does', () => {
    const { guest } = setup();
    assert.deepEqual(command(guest, 0xaa), [0x55]);
    assert.deepEqual(command(guest, 0xab), [0x00]);
    command(guest, 0x60, 0x30 | 0x04 | 0x40); // both ports disabled, SYS, XLAT
    guest.pio.write(DATA, 1, 0xff);
    assert.deepEqual(drain(guest), [0xfa, 0xaa]);
    guest.pio.write(DATA, 1, 0xf2);
    assert.deepEqual(drain(guest), [0xfa, 0xab, 0x41]);
    guest.pio.write(DATA, 1, 0xf4);
    assert.deepEqual(drain(guest), [0xfa]);
  });

  it('types host text into the guest, pulsing IRQ 1 for every byte', async () => {
    const { main, ps2, guest } = setup();
    command(guest, 0x60, 0x01 | 0x04 | 0x40); // keyboard interrupt, SYS, XLAT
    const text = 'Hello world 1234567890 the quick brown fox jumps over the lazy dog!\n';
    const typed = ps2.typeText(text);
    assert.ok(ps2.pendingKeys > 0, 'far more than 16 bytes: the rest waits on the host side');
    const codes: number[] = [];
    let done = false;
    void typed.then(() => (done = true));
    for (let i = 0; i < 2000 && !(done && ps2.pendingKeys === 0 && !(guest.pio.read(STATUS, 1) & OBF)); i++) {
      codes.push(...drain(guest)); // a vCPU's interrupt handler
      await sleep(1);
    }
    assert.equal(await typed, 0, 'nothing skipped');
    assert.equal(decodeSet1(codes), text);
    const pulses = (h: FakeHost): number => h.lines.get(1)?.history.filter((l) => l).length ?? 0;
    assert.equal(
      pulses(main) + pulses(guest),
      codes.length,
      'one IRQ 1 edge per byte, from whichever thread loaded it',
    );
    assert.ok(pulses(guest) > 0 && pulses(main) > 0);
    assert.deepEqual(main.lines.get(1)?.history.slice(0, 2), [true, false], 'edges are pulses');
  });

  it('sends key presses with XLAT as set 1 and without as set 2', () => {
    const { ps2, guest } = setup();
    command(guest, 0x60, 0x01 | 0x40);
    ps2.keyDown('ArrowDown');
    ps2.keyUp('ArrowDown');
    assert.deepEqual(drain(guest), [0xe0, 0x50, 0xe0, 0xd0]);
    command(guest, 0x60, 0x01);
    ps2.keyDown('ArrowDown');
    ps2.keyUp('ArrowDown');
    assert.deepEqual(drain(guest), [0xe0, 0x72, 0xe0, 0xf0, 0x72]);
    assert.throws(() => ps2.keyDown('Hyper' as Ps2Key), Ps2HostInputError);
  });

  it('moves the mouse with screen coordinates, pulsing IRQ 12', () => {
    const { main, ps2, guest } = setup();
    command(guest, 0xd4, 0xf4);
    ps2.mouseMove(10, 20, 0x01); // right and down on screen
    const bytes: [number, boolean][] = [];
    while (guest.pio.read(STATUS, 1) & OBF) {
      const aux = (guest.pio.read(STATUS, 1) & AUXB) !== 0;
      bytes.push([guest.pio.read(DATA, 1), aux]);
    }
    assert.deepEqual(bytes, [
      [0x08 | 0x01 | 0x20, true],
      [10, true],
      [0xec, true],
    ]);
    assert.deepEqual(main.lines.get(12)?.history.slice(0, 2), [true, false]);
  });

  it('passes reset requests to the machine (0xFE pulse, output port bit 0)', () => {
    const { guest } = setup();
    guest.pio.write(STATUS, 1, 0xfe);
    assert.equal(guest.resets.length, 1);
    assert.match(guest.resets[0] as string, /^8042 /);
    guest.pio.write(STATUS, 1, 0xd1);
    guest.pio.write(DATA, 1, 0x00);
    assert.equal(guest.resets.length, 2);
    guest.pio.write(STATUS, 1, 0xd1);
    guest.pio.write(DATA, 1, 0x03);
    guest.pio.write(STATUS, 1, 0xff);
    assert.equal(guest.resets.length, 2, 'no reset without a low bit 0');
  });

  it('splits wide accesses into byte cycles', () => {
    const { ps2, guest } = setup();
    command(guest, 0x60, 0x40);
    ps2.keyDown('KeyA');
    ps2.keyDown('KeyB');
    assert.equal(guest.pio.read(DATA, 2), 0xff1e, 'one byte from 0x60, 0x61 is not ours');
    assert.equal(guest.pio.read(STATUS, 4) & 0xff, 0x11, 'OBF | INH');
    assert.equal(guest.pio.read(STATUS, 4) >>> 8, 0xffffff);
    guest.pio.write(DATA, 4, 0xffffff00 | 0xf5); // disable scanning, the upper bytes fall off the bus
    assert.deepEqual(drain(guest), [0x30, 0xfa]);
  });

  it('answers hostile accesses without throwing and stays usable', () => {
    const { ps2, guest } = setup();
    let seed = 2024;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const sizes = [1, 2, 4] as const;
    const ports = [0x60, 0x64, 0x5f, 0x61, 0x63];
    for (let i = 0; i < 20000; i++) {
      const port = ports[rnd(ports.length)]!;
      const size = sizes[rnd(3)]!;
      if (rnd(3) === 0) {
        const v = guest.pio.read(port, size);
        assert.ok(v >= 0 && v <= 0xffffffff);
      } else {
        guest.pio.write(port, size, ((rnd(0x10000) << 16) | rnd(0x10000)) >>> 0);
      }
      if (rnd(50) === 0) ps2.mouseMove(rnd(100) - 50, rnd(100) - 50, rnd(8));
    }
    command(guest, 0x60, 0x01 | 0x02 | 0x04 | 0x40);
    command(guest, 0xd4, 0xf5);
    command(guest, 0xd4, 0xf5);
    drain(guest);
    assert.deepEqual(command(guest, 0xaa), [0x55]);
    guest.pio.write(DATA, 1, 0xff);
    assert.deepEqual(drain(guest), [0xfa, 0xaa]);
    ps2.keyDown('KeyQ');
    assert.deepEqual(drain(guest), [0x10]);
  });

  it('waits with host keys while paused and resets to power-on', async () => {
    const { ps2, guest } = setup();
    ps2.pause();
    const typed = ps2.typeText('ab');
    assert.deepEqual(drain(guest), []);
    ps2.resume();
    await typed;
    assert.deepEqual(drain(guest), [0x1e, 0x9e, 0x30, 0xb0]);
    command(guest, 0x60, 0x00);
    ps2.reset();
    assert.deepEqual(command(guest, 0x20), [0x43], 'power-on command byte');
    ps2.halt();
    assert.equal(await ps2.typeText('x'), 0, 'resolves at once after halt');
    assert.equal(ps2.droppedKeys, 2);
  });

  it('round-trips its state through export/import', () => {
    const a = setup();
    command(a.guest, 0xd4, 0xf4);
    a.ps2.keyDown('KeyZ');
    a.ps2.mouseMove(1, 1, 0);
    const state = JSON.parse(JSON.stringify(a.ps2.migrate().export())) as Payload[];
    const b = setup();
    b.ps2.migrate().import(new PayloadOffers(state));
    assert.deepEqual(drain(b.guest), drain(a.guest));
  });
});
