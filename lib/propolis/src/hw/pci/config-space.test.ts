// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The builder and the configuration-space model, register by register,
// with the test's own constants (PCI 3.0 header layout).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PciBuilder, PciBuilderError } from './builder.js';
import { PciConfigSpace } from './config-space.js';
import { PciPath, PciPathError } from './path.js';

function space(b: PciBuilder): PciConfigSpace {
  const spec = b.finish();
  const c = new PciConfigSpace(spec, new Uint8Array(256));
  c.reset();
  return c;
}

const ident = {
  vendor: 0x1af4,
  device: 0x1001,
  class: 0x01,
  subclass: 0x80,
  progIf: 0x02,
  revision: 0x07,
  subVendor: 0x1af4,
  subDevice: 0x0002,
};

describe('PciPath', () => {
  it('parses and prints b.d.f in decimal', () => {
    const p = PciPath.parse('0.24.3');
    assert.deepEqual([p.bus, p.device, p.func, p.devfn], [0, 24, 3, (24 << 3) | 3]);
    assert.equal(p.toString(), '0.24.3');
    assert.ok(p.equals(new PciPath(0, 24, 3)));
  });

  it('rejects out-of-range and malformed paths', () => {
    for (const s of ['256.0.0', '0.32.0', '0.0.8', '0.0', 'a.b.c', '0.0.0.0', '-1.0.0', '']) {
      assert.throws(() => PciPath.parse(s), PciPathError, s);
    }
  });
});

describe('PCI configuration space', () => {
  it('reports identity, class, header type and subsystem as built', () => {
    const c = space(new PciBuilder(ident));
    assert.equal(c.read(0x00, 4), 0x1001_1af4);
    assert.equal(c.read(0x08, 4), 0x0180_0207); // class 01, subclass 80, prog-if 02, revision 07
    assert.equal(c.read(0x0e, 1), 0x00);
    assert.equal(c.read(0x2c, 4), 0x0002_1af4);
    assert.equal(c.read(0x3c, 1), 0xff, 'Interrupt Line powers on as "unknown"');
    assert.equal(c.read(0x3d, 1), 0, 'no INTx declared');
    assert.equal(c.read(0x06, 2) & 0x10, 0, 'no capability list');
  });

  it('ignores writes to read-only registers and keeps command bits it does not implement at 0', () => {
    const c = space(new PciBuilder(ident).intxPin(1));
    for (const off of [0x00, 0x08, 0x0c, 0x2c, 0x30, 0x34, 0x3d]) c.write(off, 4, 0xffff_ffff);
    assert.equal(c.read(0x00, 4), 0x1001_1af4);
    assert.equal(c.read(0x08, 4), 0x0180_0207);
    assert.equal(c.read(0x30, 4), 0, 'no expansion ROM');
    assert.equal(c.read(0x3d, 1), 1, 'Interrupt Pin is read-only');
    c.write(0x04, 2, 0xffff);
    assert.equal(c.read(0x04, 2), 0x0547, 'IO, MEM, master, parity, SERR, INTx disable');
    c.write(0x3c, 1, 0x0b);
    assert.equal(c.read(0x3c, 1), 0x0b);
  });

  it('treats status error bits as write-1-to-clear and the rest as read-only', () => {
    const c = space(new PciBuilder(ident).msix(0, 4));
    c.bytes[0x07] = 0xf9; // pretend the error bits were set
    c.setBits16(0x06, 0x08, true); // and an interrupt is pending
    assert.equal(c.read(0x06, 2), 0xf918);
    c.write(0x06, 2, 0x2000 | 0x0018); // clear one error bit; writing INTERRUPT/CAP_LIST does nothing
    assert.equal(c.read(0x06, 2), 0xd918);
    c.write(0x06, 2, 0xffff);
    assert.equal(c.read(0x06, 2), 0x0018);
  });

  it('implements device registers with init values, write masks and write-1-to-clear bits', () => {
    const c = space(
      new PciBuilder(ident)
        .register(0x60, 1, { init: 0x80, writable: 0x8f })
        .register(0x64, 2, { init: 0x0f0f, w1c: 0x00ff }),
    );
    assert.equal(c.read(0x60, 1), 0x80);
    c.write(0x60, 1, 0x7a);
    assert.equal(c.read(0x60, 1), 0x0a);
    c.write(0x64, 2, 0xffff);
    assert.equal(c.read(0x64, 2), 0x0f00);
    c.write(0x61, 1, 0xff);
    assert.equal(c.read(0x61, 1), 0, 'unlisted bytes read 0');
  });

  it('sizes and places an I/O BAR', () => {
    const c = space(new PciBuilder(ident).barIo(0, 0x40));
    assert.equal(c.read(0x10, 4), 0x0000_0001);
    c.write(0x10, 4, 0xffff_ffff);
    assert.equal(c.read(0x10, 4), 0xffff_ffc1, 'size mask with the I/O bit');
    c.write(0x10, 4, 0xc0a5);
    assert.equal(c.read(0x10, 4), 0xc081, 'address bits below the size stay 0');
    const bar = c.spec.bars[0]!;
    assert.equal(c.barBase(bar), 0xc080);
    assert.equal(c.decodes(bar), false);
    c.write(0x04, 2, 0x0001);
    assert.equal(c.decodes(bar), true);
  });

  it('sizes and places 32-bit and prefetchable BARs', () => {
    const c = space(new PciBuilder(ident).barMmio32(1, 0x1000).barMmio32(2, 0x10_0000, { prefetch: true }));
    c.write(0x14, 4, 0xffff_ffff);
    assert.equal(c.read(0x14, 4), 0xffff_f000);
    c.write(0x18, 4, 0xffff_ffff);
    assert.equal(c.read(0x18, 4), 0xfff0_0008);
    c.write(0x14, 4, 0xfeb0_1234);
    assert.equal(c.barBase(c.spec.bars[0]!), 0xfeb0_1000);
    assert.equal(c.read(0x10, 4), 0, 'undefined BARs read 0 and ignore writes');
    c.write(0x10, 4, 0xffff_ffff);
    assert.equal(c.read(0x10, 4), 0);
  });

  it('sizes and places 64-bit BARs, including ones larger than 4 GiB', () => {
    const c = space(new PciBuilder(ident).barMmio64(2, 0x4000, { prefetch: true }).barMmio64(4, 2 ** 33));
    c.write(0x18, 4, 0xffff_ffff);
    c.write(0x1c, 4, 0xffff_ffff);
    assert.equal(c.read(0x18, 4), 0xffff_c00c, '64-bit prefetchable type bits');
    assert.equal(c.read(0x1c, 4), 0xffff_ffff);
    c.write(0x20, 4, 0xffff_ffff);
    c.write(0x24, 4, 0xffff_ffff);
    assert.equal(c.read(0x20, 4), 0x0000_0004, 'an 8 GiB BAR has no writable low address bits');
    assert.equal(c.read(0x24, 4), 0xffff_fffe);
    c.write(0x18, 4, 0x0000_8000);
    c.write(0x1c, 4, 0x0000_0001);
    assert.equal(c.barBase(c.spec.bars[0]!), 2 ** 32 + 0x8000);
    assert.equal(c.barValue(c.spec.bars[0]!), 0x1_0000_800cn);
    assert.equal(c.setBarValue(c.spec.bars[0]!, 0x2_0000_400cn), true);
    assert.equal(c.setBarValue(c.spec.bars[0]!, 0x2_0000_4004n), false, 'wrong type bits');
    assert.equal(c.setBarValue(c.spec.bars[0]!, 0x2_0000_200cn), false, 'below the size');
  });

  it('decodes nothing for unassigned BARs or I/O BARs beyond 64 KiB', () => {
    const c = space(new PciBuilder(ident).barIo(0, 0x100));
    c.write(0x04, 2, 3);
    assert.equal(c.barBase(c.spec.bars[0]!), undefined);
    c.write(0x10, 4, 0x1_0000);
    assert.equal(c.barBase(c.spec.bars[0]!), undefined);
    c.write(0x10, 4, 0xff00);
    assert.equal(c.barBase(c.spec.bars[0]!), 0xff00);
  });

  it('links the capability list in ascending order', () => {
    const body = new Uint8Array([0xaa, 0xbb]);
    const c = space(
      new PciBuilder(ident).capability(0x09, 8, { body }).msix(1, 8).capability(0x09, 4, { offset: 0x80 }),
    );
    assert.equal(c.read(0x06, 2) & 0x10, 0x10);
    const seen: [number, number][] = [];
    for (let p = c.read(0x34, 1); p !== 0 && seen.length < 10; p = c.read(p + 1, 1)) seen.push([p, c.read(p, 1)]);
    assert.deepEqual(seen, [
      [0x40, 0x09],
      [0x48, 0x11],
      [0x80, 0x09],
    ]);
    assert.equal(c.read(0x42, 2), 0xbbaa);
    assert.equal(c.read(0x4a, 2), 7, 'MSI-X table size is N-1');
    assert.equal(c.read(0x4c, 4), 0x0000_0001, 'table at offset 0 of BAR1');
    assert.equal(c.read(0x50, 4), 0x0000_1001, 'PBA at 4 KiB in BAR1');
    c.write(0x4a, 2, 0xffff);
    assert.equal(c.read(0x4a, 2), 0xc007, 'only enable and function mask are writable');
  });

  it('answers every offset and size, out of range with all-ones, without throwing', () => {
    const c = space(new PciBuilder(ident).barIo(0, 0x20).barMmio64(2, 0x1000).msix(4, 3).intxPin(2));
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0);
    for (let off = -4; off < 264; off++) {
      for (const size of [1, 2, 3, 4, 8]) {
        c.write(off, size, rnd());
        const v = c.read(off, size);
        assert.ok(v >= 0 && v < 2 ** 32);
        if (off < 0 || off + size > 256 || size === 3 || size === 8) {
          assert.equal(v, size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff);
        }
      }
    }
    assert.equal(c.read(0, 4), 0x1001_1af4, 'identity survives');
    assert.equal(c.read(0x3d, 1), 2);
    assert.equal(c.read(0xff, 2), 0xffff, 'crossing the end reads all-ones');
    assert.equal(c.read(0x0d, 2), c.read(0x0d, 1) | (c.read(0x0e, 1) << 8), 'misaligned inside the space works');
  });

  it('rejects impossible definitions', () => {
    const b = (): PciBuilder => new PciBuilder(ident);
    assert.throws(() => b().barIo(0, 3), PciBuilderError);
    assert.throws(() => b().barIo(0, 0x10000), PciBuilderError);
    assert.throws(() => b().barMmio32(0, 8), PciBuilderError);
    assert.throws(() => b().barMmio32(6, 16), PciBuilderError);
    assert.throws(() => b().barMmio64(5, 16), PciBuilderError);
    assert.throws(() => b().barMmio64(0, 16).barIo(1, 4), PciBuilderError);
    assert.throws(() => b().barIo(1, 4).msix(1, 2), PciBuilderError);
    assert.throws(() => b().msix(0, 0), PciBuilderError);
    assert.throws(() => b().msix(0, 2049), PciBuilderError);
    assert.throws(() => b().intxPin(5), PciBuilderError);
    assert.throws(() => b().register(0x3c, 1), PciBuilderError);
    assert.throws(() => b().register(0x60, 2).register(0x61, 1).finish(), PciBuilderError);
    assert.throws(() => b().barIo(2, 4).bridge(), PciBuilderError);
    assert.throws(() => new PciBuilder({ ...ident, vendor: 0x10000 }), PciBuilderError);
  });

  it('gives a bridge header writable bus numbers and windows, no prefetchable window', () => {
    const c = space(new PciBuilder({ vendor: 0x01de, device: 2, class: 6, subclass: 4 }).bridge());
    assert.equal(c.read(0x0e, 1), 0x01);
    c.write(0x18, 4, 0x00ff_0201);
    assert.equal(c.read(0x18, 4), 0x00ff_0201, 'primary, secondary, subordinate (sec. latency reads 0)');
    c.write(0x1c, 2, 0xffff);
    assert.equal(c.read(0x1c, 2), 0xf0f0, '16-bit I/O window');
    c.write(0x20, 4, 0xffff_ffff);
    assert.equal(c.read(0x20, 4), 0xfff0_fff0);
    c.write(0x24, 4, 0xffff_ffff);
    assert.equal(c.read(0x24, 4), 0, 'no prefetchable window');
    c.write(0x3e, 2, 0xffff);
    assert.equal(c.read(0x3e, 2), 0x006f);
    assert.equal(c.read(0x2c, 4), 0, 'no subsystem IDs in a type 1 header');
  });
});
