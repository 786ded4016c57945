// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Guest memory bounds: no guest-supplied address or length reaches host
// memory outside a region, or a region without the needed protection.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GuestMemory, Prot } from './memory.js';

function twoRegions(): { mem: GuestMemory; low: Uint8Array; rom: Uint8Array; outside: Uint8Array } {
  // Both regions are windows of one bigger buffer, so a bounds bug would
  // show up as a write landing in `outside`.
  const backing = new Uint8Array(0x4000);
  const low = backing.subarray(0x1000, 0x2000);
  const rom = backing.subarray(0x3000, 0x3800);
  const mem = GuestMemory.fromBuffers([
    { gpa: 0, bytes: low },
    { gpa: 0x10000, bytes: rom, prot: Prot.Read },
  ]);
  return { mem, low, rom, outside: backing };
}

describe('GuestMemory', () => {
  it('reads and writes little-endian values inside a region', () => {
    const { mem, low } = twoRegions();
    assert.equal(mem.writeU32(0x10, 0x11223344), true);
    assert.equal(low[0x10], 0x44);
    assert.equal(mem.readU16(0x12), 0x1122);
    assert.equal(mem.writeU64(0x20, 0xfedcba9876543210n), true);
    assert.equal(mem.readU64(0x20), 0xfedcba9876543210n);
    assert.equal(mem.readU8(0xfff), 0);
  });

  it('refuses accesses that cross or leave a region', () => {
    const { mem, outside } = twoRegions();
    const before = outside.slice();
    assert.equal(mem.writeU32(0xffe, 1), false, 'crosses the end of RAM');
    assert.equal(mem.readU32(0xffe), undefined);
    assert.equal(mem.writeU8(0x1000, 1), false, 'just past RAM');
    assert.equal(mem.readU8(0x5000), undefined, 'hole');
    assert.equal(mem.write(0xf00, new Uint8Array(0x101)), false);
    assert.equal(mem.read(0xff0, new Uint8Array(0x20)), false);
    assert.equal(mem.slice(0x800, 0x801), undefined);
    assert.deepEqual(outside, before, 'nothing was written anywhere');
  });

  it('rejects hostile addresses and lengths', () => {
    const { mem } = twoRegions();
    for (const a of [-1, -0x1000, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, 0.5, 2 ** 64]) {
      assert.equal(mem.readU8(a), undefined, `read at ${a}`);
      assert.equal(mem.writeU8(a, 1), false, `write at ${a}`);
      assert.equal(mem.slice(a, 1), undefined);
    }
    for (const n of [-1, Number.NaN, 2 ** 60, 1.5]) assert.equal(mem.slice(0, n), undefined, `length ${n}`);
  });

  it('enforces protection: a read-only region cannot be written', () => {
    const { mem, rom } = twoRegions();
    rom[0] = 0xaa;
    assert.equal(mem.readU8(0x10000), 0xaa);
    assert.equal(mem.writeU8(0x10000, 1), false);
    assert.equal(mem.write(0x10000, new Uint8Array(4)), false);
    assert.equal(mem.slice(0x10000, 4, Prot.Write), undefined);
    assert.equal(rom[0], 0xaa);
  });

  it('gives bounds-checked slices', () => {
    const { mem, low } = twoRegions();
    const s = mem.slice(0x100, 16, Prot.ReadWrite);
    assert.ok(s);
    assert.equal(s.writeU32(12, 0xdeadbeef), true);
    assert.equal(s.writeU32(13, 1), false, 'crosses the slice end');
    assert.equal(s.readU8(16), undefined);
    assert.equal(s.readU8(-1), undefined);
    assert.equal(low[0x10c], 0xef);
    const ro = mem.slice(0x100, 16, Prot.Read);
    assert.equal(ro?.writeU8(0, 1), false, 'a read slice cannot write');
  });

  it('rejects overlapping or mis-sized regions at construction', () => {
    assert.throws(() =>
      GuestMemory.fromBuffers([
        { gpa: 0, bytes: new Uint8Array(0x2000) },
        { gpa: 0x1000, bytes: new Uint8Array(0x1000) },
      ]),
    );
    assert.throws(() => new GuestMemory([{ gpa: 0, size: 10, prot: Prot.Read, bytes: new Uint8Array(5) }]));
  });
});
