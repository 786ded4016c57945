// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ByteWriter, concat, fixChecksum, fixedAscii, sum8 } from './bytes.js';

describe('ByteWriter', () => {
  it('writes little-endian fields and keeps them across growth', () => {
    const w = new ByteWriter();
    for (let i = 0; i < 100; i++)
      w.u8(i & 0xff)
        .u16(0x0201)
        .u32(0x0605_0403)
        .u64(0x0e0d_0c0b_0a09_0807n);
    const b = w.finish();
    assert.equal(b.length, 100 * 15);
    for (let i = 0; i < 100; i++) {
      assert.deepEqual([...b.subarray(i * 15, i * 15 + 15)], [i, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    }
  });

  it('rejects out-of-range values', () => {
    const w = new ByteWriter();
    assert.throws(() => w.u8(256));
    assert.throws(() => w.u16(-1));
    assert.throws(() => w.u32(2 ** 32));
    assert.throws(() => w.u64(-1n));
    assert.throws(() => w.ascii('TOOLONG', 4));
  });

  it('pads fixed ASCII fields and zero-fills', () => {
    assert.deepEqual([...fixedAscii('AB', 4)], [0x41, 0x42, 0x20, 0x20]);
    assert.deepEqual([...new ByteWriter().ascii('X', 3, 0).zeros(2).finish()], [0x58, 0, 0, 0, 0]);
    assert.throws(() => fixedAscii('é', 2));
  });
});

describe('checksums', () => {
  it('makes a range sum to zero', () => {
    const b = Uint8Array.from([0x10, 0xff, 0x00, 0x80, 0x01]);
    fixChecksum(b, 2, 0, 5);
    assert.equal(sum8(b), 0);
    assert.equal(b[2], (0x100 - ((0x10 + 0xff + 0x80 + 0x01) & 0xff)) & 0xff);
    assert.throws(() => fixChecksum(b, 4, 0, 3), /outside its range/);
  });

  it('concatenates', () => {
    assert.deepEqual([...concat([Uint8Array.of(1), Uint8Array.of(), Uint8Array.of(2, 3)])], [1, 2, 3]);
  });
});
