// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The CMOS RAM layout firmware reads: memory sizes for small, 3 GiB and
// above-4-GiB machines, the vCPU count and the AT checksum.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CmosConfigError, cmosChecksum, pcCmosBytes } from './pc-cmos.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

function layout(lowmem: number, highmem: number, cpus = 1): Uint8Array {
  const cmos = new Uint8Array(128);
  for (const [i, v] of pcCmosBytes({ lowmem, highmem, cpus })) cmos[i] = v;
  return cmos;
}

const u16 = (c: Uint8Array, lo: number): number => (c[lo] as number) | ((c[lo + 1] as number) << 8);
const u24 = (c: Uint8Array, lo: number): number => u16(c, lo) | ((c[lo + 2] as number) << 16);

describe('PC CMOS layout', () => {
  it('describes a 32 MiB machine', () => {
    const c = layout(32 * MIB, 0, 2);
    assert.equal(u16(c, 0x15), 640, 'base memory KiB');
    assert.equal(u16(c, 0x17), 31 * 1024, 'KiB above 1 MiB');
    assert.equal(u16(c, 0x30), 31 * 1024);
    assert.equal(u16(c, 0x34), 256, '64 KiB units above 16 MiB');
    assert.equal(u24(c, 0x5b), 0);
    assert.equal(c[0x5f], 1, 'vCPUs - 1');
  });

  it('caps the 1 MiB count and counts 64 KiB units up to 3 GiB', () => {
    const c = layout(3 * GIB, 0, 4);
    assert.equal(u16(c, 0x17), 0xffff);
    assert.equal(u16(c, 0x30), 0xffff);
    assert.equal(u16(c, 0x34), 0xbf00, '(3 GiB - 16 MiB) / 64 KiB');
    assert.equal(u24(c, 0x5b), 0);
    assert.equal(c[0x5f], 3);
  });

  it('counts memory above 4 GiB for a 6 GiB machine', () => {
    const c = layout(3 * GIB, 3 * GIB);
    assert.equal(u16(c, 0x34), 0xbf00);
    assert.deepEqual([c[0x5b], c[0x5c], c[0x5d]], [0x00, 0xc0, 0x00], '3 GiB / 64 KiB = 0xC000');
  });

  it('reports no drives, a coprocessor and a pointing device', () => {
    const c = layout(32 * MIB, 0);
    assert.equal(c[0x10], 0, 'no diskettes');
    assert.equal(c[0x12], 0, 'no AT hard disks');
    assert.equal(c[0x14], 0x06);
    assert.equal(c[0x0f], 0, 'shutdown status: normal');
  });

  it('sums 0x10..0x2D for the checksum', () => {
    const c = layout(32 * MIB, 0);
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += c[i] as number;
    assert.equal(
      cmosChecksum((i) => c[i] as number),
      sum,
    );
    assert.equal(sum, 0x06 + 0x80 + 0x02 + 0x00 + 0x7c, 'equipment, base and extended memory bytes');
  });

  it('applies extra bytes and refuses bad configurations', () => {
    const extra = pcCmosBytes({ lowmem: 32 * MIB, highmem: 0, cpus: 1, extra: [{ index: 0x3d, value: 0x21 }] });
    assert.deepEqual(extra.at(-1), [0x3d, 0x21]);
    assert.throws(() => pcCmosBytes({ lowmem: 512 * 1024, highmem: 0, cpus: 1 }), CmosConfigError);
    assert.throws(() => pcCmosBytes({ lowmem: 5 * GIB, highmem: 0, cpus: 1 }), CmosConfigError);
    assert.throws(() => pcCmosBytes({ lowmem: 32 * MIB, highmem: -1, cpus: 1 }), CmosConfigError);
    assert.throws(() => pcCmosBytes({ lowmem: 32 * MIB, highmem: 0, cpus: 0 }), CmosConfigError);
    assert.throws(() => pcCmosBytes({ lowmem: 32 * MIB, highmem: 0, cpus: 1.5 }), CmosConfigError);
    const bad = (index: number, value: number) => () =>
      pcCmosBytes({ lowmem: 32 * MIB, highmem: 0, cpus: 1, extra: [{ index, value }] });
    assert.throws(bad(0x0b, 0), CmosConfigError, 'a clock register');
    assert.throws(bad(0x32, 0x20), CmosConfigError, 'the century');
    assert.throws(bad(0x80, 0), CmosConfigError);
    assert.throws(bad(0x40, 256), CmosConfigError);
  });
});
