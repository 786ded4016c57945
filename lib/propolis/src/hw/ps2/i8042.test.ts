// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Register-level tests of the 8042 model with its keyboard and mouse,
// with the test's own constants from the IBM/PS2 references.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrateError, PayloadOffers, type Payload } from '../../migrate.js';
import { I8042 } from './i8042.js';

const ST_OBF = 0x01,
  ST_SYS = 0x04,
  ST_A2 = 0x08,
  ST_INH = 0x10,
  ST_AUXB = 0x20;
const CCB_KBD_INT = 0x01,
  CCB_AUX_INT = 0x02,
  CCB_SYS = 0x04,
  CCB_KBD_DIS = 0x10,
  CCB_AUX_DIS = 0x20,
  CCB_XLAT = 0x40;
const ACK = 0xfa,
  BAT = 0xaa,
  RESEND = 0xfe;

/** Read everything waiting, as [byte, fromAux] pairs. */
function drainTagged(c: I8042): [number, boolean][] {
  const out: [number, boolean][] = [];
  for (let i = 0; i < 1000 && c.readStatus() & ST_OBF; i++) {
    const aux = (c.readStatus() & ST_AUXB) !== 0;
    out.push([c.readData(), aux]);
  }
  return out;
}

const drain = (c: I8042): number[] => drainTagged(c).map(([b]) => b);

/** Controller command with an optional data byte; returns what it answered. */
function command(c: I8042, cmd: number, arg?: number): number[] {
  c.writeCommand(cmd);
  if (arg !== undefined) c.writeData(arg);
  return drain(c);
}

function kbd(c: I8042, ...bytes: number[]): number[] {
  for (const b of bytes) c.writeData(b);
  return drain(c);
}

function aux(c: I8042, ...bytes: number[]): [number, boolean][] {
  for (const b of bytes) {
    c.writeCommand(0xd4);
    c.writeData(b);
  }
  return drainTagged(c);
}

/** A controller set up as firmware leaves it, with the given command byte. */
function ready(ccb = CCB_KBD_INT | CCB_AUX_INT | CCB_SYS | CCB_XLAT): I8042 {
  const c = new I8042();
  command(c, 0x60, ccb);
  c.takeIrqEdges();
  return c;
}

describe('I8042 controller', () => {
  it('starts with an empty output buffer and SYS clear', () => {
    const c = new I8042();
    assert.equal(c.readStatus(), ST_INH);
    assert.deepEqual(command(c, 0x20), [CCB_KBD_INT | CCB_AUX_INT | CCB_XLAT]);
  });

  it('runs the firmware initialisation sequence', () => {
    const c = new I8042();
    drain(c);
    assert.deepEqual(command(c, 0xaa), [0x55], 'self-test passed');
    assert.equal(c.readStatus() & ST_SYS, ST_SYS, 'self-test sets SYS');
    assert.deepEqual(command(c, 0xab), [0x00], 'keyboard interface test');
    assert.deepEqual(command(c, 0xa9), [0x00], 'aux interface test');
    command(c, 0x60, CCB_SYS | CCB_KBD_DIS | CCB_AUX_DIS | CCB_XLAT);
    assert.deepEqual(command(c, 0x20), [CCB_SYS | CCB_KBD_DIS | CCB_AUX_DIS | CCB_XLAT]);
    assert.deepEqual(kbd(c, 0xff), [ACK, BAT], 'keyboard reset (writing to it enables its interface)');
    assert.deepEqual(kbd(c, 0xf5), [ACK], 'disable scanning');
    assert.deepEqual(kbd(c, 0xf2), [ACK, 0xab, 0x41], 'identify, through translation (0x83 reads 0x41)');
    assert.deepEqual(kbd(c, 0xf0, 0x02), [ACK, ACK], 'select scan-code set 2');
    assert.deepEqual(kbd(c, 0xf0, 0x00), [ACK, ACK, 0x41], 'each byte acknowledged, then "set 2", translated');
    assert.deepEqual(kbd(c, 0xed, 0x02), [ACK, ACK], 'LEDs');
    assert.equal(c.keyboard.leds, 0x02);
    assert.deepEqual(kbd(c, 0xf3, 0x20), [ACK, ACK], 'typematic');
    assert.equal(c.keyboard.typematic, 0x20);
    assert.deepEqual(kbd(c, 0xf4), [ACK], 'enable scanning');
    command(c, 0x60, CCB_KBD_INT | CCB_SYS | CCB_XLAT);
    c.keyEvent('KeyA', true);
    assert.deepEqual(drain(c), [0x1e]);
  });

  it('answers the keyboard protocol without translation', () => {
    const c = ready(CCB_KBD_INT);
    assert.deepEqual(kbd(c, 0xf2), [ACK, 0xab, 0x83]);
    assert.deepEqual(kbd(c, 0xf0, 0x00), [ACK, ACK, 0x02]);
    assert.deepEqual(kbd(c, 0xf0, 0x03), [ACK, ACK], 'set 3 accepted…');
    assert.deepEqual(kbd(c, 0xf0, 0x00), [ACK, ACK, 0x02], '…and runs as set 2');
    assert.deepEqual(kbd(c, 0xf0, 0x05), [ACK, RESEND], 'no set 5');
    assert.deepEqual(kbd(c, 0xee), [0xee], 'echo');
    assert.deepEqual(kbd(c, 0x42), [RESEND], 'unknown command');
    assert.deepEqual(kbd(c, 0xfe), [RESEND], 'resend repeats the last byte');
    assert.deepEqual(kbd(c, 0xed, 0xf2), [ACK, ACK, 0xab, 0x83], 'a command where an argument was due');
    assert.deepEqual(kbd(c, 0xf6), [ACK]);
    assert.equal(c.keyboard.typematic, 0x2b, 'defaults');
  });

  it('reads and writes controller RAM', () => {
    const c = ready();
    for (let i = 1; i < 32; i++) command(c, 0x60 + i, i * 3);
    for (let i = 1; i < 32; i++) assert.deepEqual(command(c, 0x20 + i), [i * 3]);
  });

  it('sets and clears the interface-disable bits', () => {
    const c = ready(0);
    command(c, 0xad);
    command(c, 0xa7);
    assert.deepEqual(command(c, 0x20), [CCB_KBD_DIS | CCB_AUX_DIS]);
    command(c, 0xae);
    assert.deepEqual(command(c, 0x20), [CCB_AUX_DIS]);
    command(c, 0xa8);
    assert.deepEqual(command(c, 0x20), [0]);
  });

  it('reports A2 for the last port written and abandons a data phase on a new command', () => {
    const c = ready();
    c.writeCommand(0x60);
    assert.equal(c.readStatus() & ST_A2, ST_A2);
    c.writeCommand(0xab); // the pending 0x60 is dropped
    assert.deepEqual(drain(c), [0x00]);
    c.writeData(0xf4); // goes to the keyboard
    assert.equal(c.readStatus() & ST_A2, 0);
    assert.deepEqual(drain(c), [ACK]);
  });

  it('reads the input port, the output port and the test inputs', () => {
    const c = ready();
    assert.deepEqual(command(c, 0xc0), [0xa0]);
    assert.deepEqual(command(c, 0xd0), [0xcf], 'not in reset, A20 on, lines idle; no OBF');
    assert.deepEqual(command(c, 0xe0), [0x00]);
    command(c, 0xd1, 0xcd); // A20 off
    assert.equal(c.a20, false);
    assert.deepEqual(command(c, 0xd0), [0xcd]);
    assert.equal(c.takeResetRequest(), undefined);
  });

  it('asks for a system reset through the output port and pulse commands', () => {
    const c = ready();
    command(c, 0xd1, 0xfe);
    assert.match(c.takeResetRequest() ?? '', /8042/);
    command(c, 0xd1, 0xcf);
    assert.equal(c.takeResetRequest(), undefined);
    command(c, 0xfe);
    assert.match(c.takeResetRequest() ?? '', /0xfe/);
    command(c, 0xf0);
    assert.ok(c.takeResetRequest(), 'F0 pulses all four lines, reset included');
    command(c, 0xff);
    command(c, 0xfd);
    assert.equal(c.takeResetRequest(), undefined, 'FF and FD leave bit 0 alone');
  });

  it('writes the output buffer as if from a device (D2, D3)', () => {
    const c = ready(CCB_KBD_INT | CCB_AUX_INT | CCB_XLAT);
    c.writeCommand(0xd2);
    c.writeData(0x1c);
    assert.deepEqual(drainTagged(c), [[0x1c, false]], 'not translated');
    assert.equal(c.takeIrqEdges(), 1);
    c.writeCommand(0xd3);
    c.writeData(0x5a);
    assert.deepEqual(drainTagged(c), [[0x5a, true]]);
    assert.equal(c.takeIrqEdges(), 2);
  });

  it('survives random bytes and command sequences and stays usable', () => {
    const c = new I8042();
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (let i = 0; i < 50000; i++) {
      switch (rnd(6)) {
        case 0:
          c.writeCommand(rnd(256));
          break;
        case 1:
        case 2:
          c.writeData(rnd(256));
          break;
        case 3:
          c.readData();
          break;
        case 4:
          c.keyEvent('KeyQ', rnd(2) === 0);
          break;
        default:
          c.mouseMove(rnd(1000) - 500, rnd(1000) - 500, rnd(8));
      }
      const s = c.readStatus();
      assert.ok(s >= 0 && s <= 0xff);
    }
    c.takeResetRequest();
    command(c, 0x60, CCB_KBD_INT | CCB_AUX_INT | CCB_SYS | CCB_XLAT);
    // Whatever the mouse and keyboard still owe comes out, then the answers.
    aux(c, 0xf5, 0xf5); // the first may be taken as an argument the mouse was waiting for
    drain(c);
    assert.deepEqual(command(c, 0xaa), [0x55]);
    assert.deepEqual(kbd(c, 0xff), [ACK, BAT]);
    assert.deepEqual(aux(c, 0xff), [
      [ACK, true],
      [BAT, true],
      [0x00, true],
    ]);
  });
});

describe('I8042 keyboard input', () => {
  it('sends set-1 codes through translation and set-2 codes without', () => {
    const c = ready(CCB_KBD_INT | CCB_XLAT);
    c.keyEvent('KeyA', true);
    c.keyEvent('KeyA', false);
    assert.deepEqual(drain(c), [0x1e, 0x9e]);
    command(c, 0x60, CCB_KBD_INT);
    c.keyEvent('KeyA', true);
    c.keyEvent('KeyA', false);
    assert.deepEqual(drain(c), [0x1c, 0xf0, 0x1c]);
  });

  it('prefixes extended keys with E0, through translation too', () => {
    const c = ready(CCB_KBD_INT | CCB_XLAT);
    c.keyEvent('ArrowUp', true);
    c.keyEvent('ArrowUp', false);
    c.keyEvent('PrintScreen', true);
    c.keyEvent('PrintScreen', false);
    assert.deepEqual(drain(c), [0xe0, 0x48, 0xe0, 0xc8, 0xe0, 0x2a, 0xe0, 0x37, 0xe0, 0xb7, 0xe0, 0xaa]);
    c.keyEvent('Pause', true);
    assert.deepEqual(drain(c), [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5]);
    c.keyEvent('F7', false);
    assert.deepEqual(drain(c), [0xc1], 'set-2 F0 83 becomes set-1 C1');
    command(c, 0x60, CCB_KBD_INT);
    c.keyEvent('ArrowUp', false);
    assert.deepEqual(drain(c), [0xe0, 0xf0, 0x75]);
  });

  it('sends set 1 itself when asked to, without translation', () => {
    const c = ready(CCB_KBD_INT);
    kbd(c, 0xf0, 0x01);
    c.keyEvent('Enter', true);
    c.keyEvent('Enter', false);
    assert.deepEqual(drain(c), [0x1c, 0x9c]);
    assert.deepEqual(kbd(c, 0xf0, 0x00), [ACK, ACK, 0x01]);
  });

  it('drops keys while scanning is disabled', () => {
    const c = ready(CCB_KBD_INT | CCB_XLAT);
    kbd(c, 0xf5);
    assert.equal(c.keyEvent('KeyB', true), 'ignored');
    assert.deepEqual(drain(c), []);
    kbd(c, 0xf4);
    assert.equal(c.keyEvent('KeyB', true), 'queued');
    assert.deepEqual(drain(c), [0x30]);
  });

  it('holds keyboard bytes while its interface is disabled', () => {
    const c = ready(CCB_KBD_INT | CCB_XLAT | CCB_KBD_DIS);
    c.keyEvent('KeyC', true);
    assert.equal(c.readStatus() & ST_OBF, 0);
    c.writeCommand(0xae);
    assert.deepEqual(drain(c), [0x2e]);
  });

  it('keeps 16 bytes and then sends one overrun code', () => {
    const c = ready(CCB_KBD_INT); // set 2, no translation: F0 1A per release
    const results: string[] = [];
    for (let i = 0; i < 12; i++) results.push(c.keyEvent('KeyZ', false));
    // The first byte moves on into the output buffer at once; 16 more fit.
    assert.deepEqual(results, [...Array(8).fill('queued'), ...Array(4).fill('overrun')]);
    const got = drain(c);
    assert.deepEqual(got, [...Array(8).fill([0xf0, 0x1a]).flat(), 0x00], 'keys, one set-2 overrun code, nothing after');
    assert.equal(c.keyEvent('KeyZ', true), 'queued');
    assert.deepEqual(drain(c), [0x1a], 'flowing again once drained');
    command(c, 0x60, CCB_KBD_INT | CCB_XLAT);
    for (let i = 0; i < 20; i++) c.keyEvent('KeyZ', true);
    const t = drain(c);
    assert.deepEqual(t, [...Array(17).fill(0x2c), 0xff], 'output buffer + 16, then the overrun code as set-1 0xFF');
  });

  it('knows whether a key fits before sending it', () => {
    const c = ready(CCB_KBD_INT);
    for (let i = 0; i < 8; i++) c.keyEvent('KeyZ', false); // 15 bytes wait
    assert.equal(c.keyFits('KeyZ', true), true, '15 + 1');
    assert.equal(c.keyFits('KeyZ', false), false, '15 + 2');
  });

  it('makes an IRQ 1 edge for each byte when enabled, none when not', () => {
    const c = ready(CCB_XLAT);
    c.keyEvent('KeyD', true);
    c.keyEvent('KeyD', false);
    assert.equal(c.takeIrqEdges(), 0, 'interrupt disabled');
    c.writeCommand(0x60);
    c.writeData(CCB_XLAT | CCB_KBD_INT);
    assert.equal(c.takeIrqEdges(), 1, 'enabling with a byte waiting is an edge');
    assert.equal(c.readData(), 0x20);
    assert.equal(c.takeIrqEdges(), 1, 'the next byte moved in');
    assert.equal(c.readData(), 0xa0);
    assert.equal(c.takeIrqEdges(), 0, 'nothing more');
  });
});

describe('I8042 mouse', () => {
  it('resets, identifies and enables over D4', () => {
    const c = ready();
    assert.deepEqual(aux(c, 0xff), [
      [ACK, true],
      [BAT, true],
      [0x00, true],
    ]);
    assert.deepEqual(aux(c, 0xf2), [
      [ACK, true],
      [0x00, true],
    ]);
    assert.deepEqual(aux(c, 0xf3, 200), [
      [ACK, true],
      [ACK, true],
    ]);
    assert.deepEqual(aux(c, 0xf3, 7), [
      [ACK, true],
      [RESEND, true],
    ]);
    assert.deepEqual(aux(c, 0xe8, 3), [
      [ACK, true],
      [ACK, true],
    ]);
    assert.deepEqual(aux(c, 0xe7).length, 1);
    assert.deepEqual(aux(c, 0xf4), [[ACK, true]]);
    assert.deepEqual(
      aux(c, 0xe9).map(([b]) => b),
      [ACK, 0x30, 3, 200],
      'status: enabled, 2:1 scaling; resolution; rate',
    );
    assert.deepEqual(aux(c, 0xec), [[RESEND, true]], 'no wrap mode');
  });

  it('streams 3-byte movement packets once enabled', () => {
    const c = ready();
    aux(c, 0xf4);
    c.takeIrqEdges();
    c.mouseMove(5, 3, 0);
    assert.deepEqual(drainTagged(c), [
      [0x08, true],
      [5, true],
      [3, true],
    ]);
    assert.equal(c.takeIrqEdges(), 2, 'IRQ 12');
    c.mouseMove(-2, -300, 0x01); // left button; Y needs two packets
    assert.deepEqual(drain(c), [0x08 | 0x01 | 0x10 | 0x20, 0xfe, 0x01, 0x08 | 0x01 | 0x20, 0x00, 0xd3]);
    c.mouseMove(0, 0, 0);
    assert.deepEqual(drain(c), [0x08, 0, 0], 'a button change alone is reported');
    c.mouseMove(0, 0, 0);
    assert.deepEqual(drain(c), [], 'nothing changed, nothing sent');
  });

  it('sends nothing while reporting is disabled, but tracks buttons', () => {
    const c = ready();
    c.mouseMove(10, 10, 0x02);
    assert.deepEqual(drain(c), []);
    assert.deepEqual(
      aux(c, 0xe9).map(([b]) => b),
      [ACK, 0x01, 2, 100],
      'right button down, defaults',
    );
  });

  it('waits for a read in remote mode', () => {
    const c = ready();
    aux(c, 0xf0);
    c.mouseMove(400, -1, 0x04);
    assert.deepEqual(drain(c), []);
    assert.deepEqual(
      aux(c, 0xeb).map(([b]) => b),
      [ACK, 0x08 | 0x04 | 0x20 | 0x40, 0xff, 0xff],
      'middle button, X overflowed at +255, Y -1',
    );
    assert.deepEqual(
      aux(c, 0xeb).map(([b]) => b),
      [ACK, 0x08 | 0x04, 0, 0],
      'read clears the counters',
    );
  });

  it('applies 2:1 scaling in stream mode', () => {
    const c = ready();
    aux(c, 0xe7, 0xf4);
    c.mouseMove(4, -5, 0);
    assert.deepEqual(drain(c), [0x08 | 0x20, 6, 0xf7]);
  });

  it('shares the output buffer with the keyboard in order, with AUXB', () => {
    const c = ready(CCB_KBD_INT | CCB_AUX_INT | CCB_XLAT);
    aux(c, 0xf4);
    c.keyEvent('KeyA', true);
    c.mouseMove(1, 1, 0);
    c.keyEvent('KeyA', false);
    assert.deepEqual(drainTagged(c), [
      [0x1e, false],
      [0x08, true],
      [1, true],
      [1, true],
      [0x9e, false],
    ]);
    // With the keyboard disabled, mouse bytes pass it.
    command(c, 0xad);
    c.keyEvent('KeyS', true);
    c.mouseMove(2, 0, 0);
    assert.deepEqual(drainTagged(c), [
      [0x08, true],
      [2, true],
      [0, true],
    ]);
    // Controller replies go ahead of waiting device bytes (not of the one
    // already in the output buffer).
    c.mouseMove(3, 0, 0);
    assert.equal(c.readData(), 0x08);
    c.writeCommand(0x20);
    assert.deepEqual(drain(c), [3, CCB_KBD_INT | CCB_AUX_INT | CCB_XLAT | CCB_KBD_DIS, 0]);
    assert.deepEqual(command(c, 0xae), [0x1f], 'the held key follows once the keyboard is enabled');
  });
});

describe('I8042 state', () => {
  it('round-trips through export/import', () => {
    const c = ready(CCB_KBD_INT | CCB_AUX_INT | CCB_XLAT);
    aux(c, 0xf4, 0xe7);
    kbd(c, 0xed);
    command(c, 0x7f, 0x5a);
    c.keyEvent('KeyA', true);
    c.keyEvent('KeyA', false);
    c.mouseMove(600, 0, 1);
    c.writeCommand(0xd1); // pending data phase
    const exported = JSON.parse(JSON.stringify(c.export())) as Payload[];
    const d = new I8042();
    d.import(new PayloadOffers(exported));
    assert.deepEqual(d.export(), c.export());
    assert.deepEqual(drainTagged(d), drainTagged(c));
    d.writeData(0xcf);
    assert.equal(d.takeResetRequest(), undefined);
    assert.deepEqual(kbd(d, 0x04), [ACK], 'LED argument still expected');
    assert.equal(d.keyboard.leds, 4);
  });

  it('refuses bad payloads', () => {
    const [good] = new I8042().export() as [Payload];
    const data = good.data as Record<string, unknown>;
    const bad = (patch: Record<string, unknown>) => () =>
      new I8042().import(new PayloadOffers([{ ...good, data: { ...data, ...patch } }]));
    assert.throws(bad({ pendingCmd: 0xaa }), MigrateError, 'AA takes no data');
    assert.throws(bad({ obAux: true }), MigrateError, 'AUXB with an empty buffer');
    assert.throws(bad({ outPort: 0xff }), MigrateError, 'computed OBF bits');
    assert.throws(bad({ queue: [0x400] }), MigrateError, 'unknown source');
    assert.throws(bad({ queue: Array(81).fill(0) }), MigrateError, 'too long');
    assert.throws(bad({ ram: [1, 2, 3] }), MigrateError);
    assert.throws(bad({ kbdSet: 3 }), MigrateError);
    assert.throws(bad({ kbdArgCmd: 0xf4 }), MigrateError);
    assert.throws(bad({ mouseRate: 7 }), MigrateError);
    assert.throws(bad({ mouseResolution: 4 }), MigrateError);
    assert.throws(bad({ mouseDx: 1.5 }), MigrateError);
    assert.throws(bad({ mouseDy: 1 << 30 }), MigrateError);
    assert.throws(bad({ extra: 0 }), MigrateError);
    assert.throws(
      () => new I8042().import(new PayloadOffers([{ ...good, kind: 'ps2-ctrl', version: 2 }])),
      MigrateError,
    );
  });
});
