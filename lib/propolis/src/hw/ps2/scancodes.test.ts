// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Scan codes and the 8042 translation table, against the test's own
// constants from the IBM keyboard references.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PS2_KEYS, XLAT, isPs2Key, scanSequence, textToKeyEvents } from './scancodes.js';

describe('scan codes', () => {
  it('sends set-1 make and break codes', () => {
    assert.deepEqual(scanSequence('KeyA', true, 1), [0x1e]);
    assert.deepEqual(scanSequence('KeyA', false, 1), [0x9e]);
    assert.deepEqual(scanSequence('Escape', true, 1), [0x01]);
    assert.deepEqual(scanSequence('F12', false, 1), [0xd8]);
    assert.deepEqual(scanSequence('ArrowUp', true, 1), [0xe0, 0x48]);
    assert.deepEqual(scanSequence('ArrowUp', false, 1), [0xe0, 0xc8]);
    assert.deepEqual(scanSequence('ControlRight', false, 1), [0xe0, 0x9d]);
  });

  it('sends set-2 make and break codes', () => {
    assert.deepEqual(scanSequence('KeyA', true, 2), [0x1c]);
    assert.deepEqual(scanSequence('KeyA', false, 2), [0xf0, 0x1c]);
    assert.deepEqual(scanSequence('F7', true, 2), [0x83]);
    assert.deepEqual(scanSequence('Enter', true, 2), [0x5a]);
    assert.deepEqual(scanSequence('NumpadEnter', false, 2), [0xe0, 0xf0, 0x5a]);
    assert.deepEqual(scanSequence('ArrowLeft', true, 2), [0xe0, 0x6b]);
    assert.deepEqual(scanSequence('MetaLeft', true, 2), [0xe0, 0x1f]);
  });

  it('has the special sequences of Print Screen and Pause', () => {
    assert.deepEqual(scanSequence('PrintScreen', true, 2), [0xe0, 0x12, 0xe0, 0x7c]);
    assert.deepEqual(scanSequence('PrintScreen', false, 1), [0xe0, 0xb7, 0xe0, 0xaa]);
    assert.deepEqual(scanSequence('Pause', true, 1), [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5]);
    assert.deepEqual(scanSequence('Pause', false, 2), [], 'no break code');
  });

  it('covers a US keyboard', () => {
    const want = [
      ...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split('').map((c) => `Key${c}`),
      ...'0123456789'.split('').map((d) => `Digit${d}`),
      ...Array.from({ length: 12 }, (_, i) => `F${i + 1}`),
      'Enter',
      'Escape',
      'Backspace',
      'Tab',
      'Space',
      'ArrowUp',
      'ArrowDown',
      'ArrowLeft',
      'ArrowRight',
      'ShiftLeft',
      'ShiftRight',
      'ControlLeft',
      'ControlRight',
      'AltLeft',
      'AltRight',
      'MetaLeft',
      'CapsLock',
      'Home',
      'End',
      'PageUp',
      'PageDown',
      'Insert',
      'Delete',
    ];
    for (const k of want) assert.ok(isPs2Key(k), k);
    assert.equal(isPs2Key('toString'), false);
    assert.equal(isPs2Key('NoSuchKey'), false);
    assert.ok(PS2_KEYS.length >= 100);
  });

  it('translates set 2 to set 1 as the 8042 does', () => {
    const pairs: [number, number][] = [
      [0x76, 0x01], // Esc
      [0x1c, 0x1e], // A
      [0x5a, 0x1c], // Enter
      [0x29, 0x39], // Space
      [0x01, 0x43], // F9
      [0x83, 0x41], // F7
      [0x00, 0xff], // overrun
      [0x02, 0x41], // the "set 2" reply
      [0xfa, 0xfa], // ACK
      [0xaa, 0xaa], // BAT
      [0xab, 0xab], // first ID byte
      [0xe0, 0xe0], // prefix
    ];
    for (const [s2, s1] of pairs) assert.equal(XLAT[s2], s1, `0x${s2.toString(16)}`);
  });

  it('translates every key\u2019s set-2 codes to its set-1 codes', () => {
    for (const key of PS2_KEYS) {
      if (key === 'PrintScreen' || key === 'Pause') continue;
      const s2 = scanSequence(key, true, 2);
      const s1 = scanSequence(key, true, 1);
      assert.deepEqual(
        s2.map((b) => XLAT[b]),
        s1,
        key,
      );
    }
  });

  it('turns text into key events with Shift where needed', () => {
    const { events, skipped } = textToKeyEvents('Hi!\n\u00e9');
    assert.equal(skipped, 1, 'no key for e-acute');
    const fmt = events.map((e) => `${e.down ? '+' : '-'}${e.key}`);
    assert.deepEqual(fmt, [
      '+ShiftLeft',
      '+KeyH',
      '-KeyH',
      '-ShiftLeft',
      '+KeyI',
      '-KeyI',
      '+ShiftLeft',
      '+Digit1',
      '-Digit1',
      '-ShiftLeft',
      '+Enter',
      '-Enter',
    ]);
  });
});
