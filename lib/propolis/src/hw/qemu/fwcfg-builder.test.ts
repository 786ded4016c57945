// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The fw_cfg builder: the byte encodings firmware expects (E820 map, boot
// order, SeaBIOS's serial console and boot settings), key assignment and
// the operator errors for bad input.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FwCfgBuilder, FwCfgConfigError, type FwCfgImage } from './fwcfg-builder.js';

function file(img: FwCfgImage, name: string): Uint8Array {
  const it = img.items.find((i) => i.name === name);
  assert.ok(it, `${name} is present`);
  return new Uint8Array(img.data, it.start, it.length).slice();
}

function key(img: FwCfgImage, k: number): Uint8Array | undefined {
  const it = img.items.find((i) => i.key === k);
  return it && new Uint8Array(img.data, it.start, it.length).slice();
}

const base = (): FwCfgBuilder => new FwCfgBuilder().cpus(1);

describe('FwCfgBuilder encodings', () => {
  it('etc/e820: 20-byte little-endian {base u64, length u64, type u32} entries', () => {
    const img = base()
      .e820([
        { base: 0, length: 0x9fc00, type: 1 },
        { base: 0xfeffc000, length: 0x4000, type: 2 },
        { base: 0x1_0000_0000n, length: 0x4000_0000n, type: 1 },
      ])
      .build();
    const b = file(img, 'etc/e820');
    assert.equal(b.length, 60);
    // prettier-ignore
    assert.deepEqual(Array.from(b), [
      0, 0, 0, 0, 0, 0, 0, 0,  0x00, 0xfc, 0x09, 0, 0, 0, 0, 0,  1, 0, 0, 0,
      0x00, 0xc0, 0xff, 0xfe, 0, 0, 0, 0,  0x00, 0x40, 0, 0, 0, 0, 0, 0,  2, 0, 0, 0,
      0, 0, 0, 0, 1, 0, 0, 0,  0, 0, 0, 0x40, 0, 0, 0, 0,  1, 0, 0, 0,
    ]);
  });

  it('bootorder: newline-joined device paths, a HALT line, NUL-terminated', () => {
    const paths = ['/pci@i0cf8/scsi@4,0/disk@0,0', '/pci@i0cf8/pci8086,5845@5,0/namespace@1,0'];
    const img = base().bootOrder(paths).build();
    assert.equal(Buffer.from(file(img, 'bootorder')).toString('latin1'), `${paths[0]}\n${paths[1]}\nHALT\0`);
    const loose = base().bootOrder(paths, { halt: false }).build();
    assert.equal(Buffer.from(file(loose, 'bootorder')).toString('latin1'), `${paths[0]}\n${paths[1]}\0`);
    assert.throws(() => base().bootOrder(['a\nb']), FwCfgConfigError);
    assert.throws(() => base().bootOrder(['']), FwCfgConfigError);
  });

  it('etc/sercon-port: the port as a 2-byte little-endian integer (SeaBIOS accepts 1, 2, 4 or 8 bytes)', () => {
    const b = file(base().serialConsole(0x3f8).build(), 'etc/sercon-port');
    assert.deepEqual(Array.from(b), [0xf8, 0x03]);
    assert.ok([1, 2, 4, 8].includes(b.length));
    assert.throws(() => base().serialConsole(0), FwCfgConfigError);
    assert.throws(() => base().serialConsole(0x10000), FwCfgConfigError);
  });

  it('boot menu (legacy 0x0e, u16) with etc/boot-menu-wait (u16 ms) and etc/boot-fail-wait (u32 ms)', () => {
    const img = base().bootMenu(true, 2500).bootFailWait(10_000).build();
    assert.deepEqual(Array.from(key(img, 0x0e)!), [1, 0]);
    assert.deepEqual(Array.from(file(img, 'etc/boot-menu-wait')), [0xc4, 0x09]);
    assert.deepEqual(Array.from(file(img, 'etc/boot-fail-wait')), [0x10, 0x27, 0, 0]);
    const never = base().bootFailWait('never').build();
    assert.deepEqual(Array.from(file(never, 'etc/boot-fail-wait')), [0xff, 0xff, 0xff, 0xff]);
    assert.throws(() => base().bootMenu(true, 70_000), FwCfgConfigError);
    assert.throws(() => base().bootFailWait(-1), FwCfgConfigError);
  });

  it('legacy items: NB_CPUS/MAX_CPUS u16, RAM_SIZE u64, NOGRAPHIC u16 (default 0), UUID', () => {
    const uuid = new Uint8Array(16).map((_, i) => i);
    const img = new FwCfgBuilder()
      .cpus(3, 8)
      .ramSize(5n << 30n)
      .noGraphic()
      .uuid(uuid)
      .build();
    assert.deepEqual(Array.from(key(img, 0x05)!), [3, 0]);
    assert.deepEqual(Array.from(key(img, 0x0f)!), [8, 0]);
    assert.deepEqual(Array.from(key(img, 0x03)!), [0, 0, 0, 0x40, 1, 0, 0, 0]);
    assert.deepEqual(Array.from(key(img, 0x04)!), [1, 0]);
    assert.deepEqual(key(img, 0x02), uuid);
    assert.deepEqual(Array.from(key(base().build(), 0x04)!), [0, 0]);
    assert.deepEqual(Array.from(key(base().build(), 0x01)!), [3, 0, 0, 0]);
  });

  it('assigns file keys in name order, whatever order the files were added in', () => {
    const a = base().file('b', new Uint8Array(1)).file('a', new Uint8Array(2)).build();
    const b = base().file('a', new Uint8Array(2)).file('b', new Uint8Array(1)).build();
    const keys = (img: FwCfgImage): [string, number][] =>
      img.items.filter((i) => i.name !== undefined).map((i) => [i.name!, i.key]);
    assert.deepEqual(keys(a), [
      ['a', 0x20],
      ['b', 0x21],
    ]);
    assert.deepEqual(keys(a), keys(b));
  });

  it('copies file contents when they are given', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const b = base().file('opt/x', bytes);
    bytes[0] = 9;
    assert.deepEqual(Array.from(file(b.build(), 'opt/x')), [1, 2, 3]);
  });
});

describe('FwCfgBuilder errors', () => {
  const bad: [string, () => unknown][] = [
    ['no cpus', () => new FwCfgBuilder().build()],
    ['zero cpus', () => new FwCfgBuilder().cpus(0)],
    ['max below count', () => new FwCfgBuilder().cpus(4, 2)],
    ['an empty name', () => base().file('', new Uint8Array(1))],
    ['a 56-byte name', () => base().file('x'.repeat(56), new Uint8Array(1))],
    ['a non-ASCII name', () => base().file('opt/é', new Uint8Array(1))],
    ['a name twice', () => base().file('a', new Uint8Array(1)).file('a', new Uint8Array(1))],
    ['e820 twice', () => base().e820([]).e820([])],
    ['a big writable file', () => base().file('w', new Uint8Array(65537), { writable: true })],
    ['a negative e820 base', () => base().e820([{ base: -1, length: 1, type: 1 }])],
    ['an e820 range past 2^64', () => base().e820([{ base: 2n ** 64n - 1n, length: 2, type: 1 }])],
    ['a fractional RAM size', () => base().ramSize(1.5)],
    ['the signature key', () => base().item(0x0000, new Uint8Array(1))],
    ['the directory key', () => base().item(0x0019, new Uint8Array(1))],
    ['a file key', () => base().item(0x0020, new Uint8Array(1))],
    ['a write-channel key', () => base().item(0x4005, new Uint8Array(1))],
    ['a short UUID', () => base().uuid(new Uint8Array(4))],
    [
      'a kernel without RAM size',
      () =>
        base()
          .kernel({ kernel: new Uint8Array(4096) })
          .build(),
    ],
  ];
  for (const [what, fn] of bad) {
    it(`refuses ${what}`, () => {
      assert.throws(fn, (e: unknown) => e instanceof FwCfgConfigError && e.code === 'FWCFG_CONFIG');
    });
  }

  it('accepts architecture-specific keys and other legacy keys', () => {
    const img = base()
      .item(0x8003, new Uint8Array([0, 0, 0, 0]))
      .item(0x0d, new Uint8Array(8))
      .build();
    assert.deepEqual(Array.from(key(img, 0x8003)!), [0, 0, 0, 0]);
    assert.equal(key(img, 0x0d)!.length, 8);
  });
});
