// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Direct kernel boot items: a synthetic bzImage (a setup header per Linux's
// boot protocol document, with the test's own offsets) split into setup and
// kernel, the header patched, the addresses and sizes as fw_cfg items, and
// all of it readable by the guest through the device.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeHost } from '../../testing/fake-host.js';
import { FwCfgBuilder, FwCfgKernelError, QemuFwCfg } from './fwcfg.js';
import { linuxBootItems } from './linux-boot.js';

const MiB = 1024 * 1024;
const K = {
  KERNEL_ADDR: 0x07,
  KERNEL_SIZE: 0x08,
  INITRD_ADDR: 0x0a,
  INITRD_SIZE: 0x0b,
  KERNEL_DATA: 0x11,
  INITRD_DATA: 0x12,
  CMDLINE_ADDR: 0x13,
  CMDLINE_SIZE: 0x14,
  CMDLINE_DATA: 0x15,
  SETUP_ADDR: 0x16,
  SETUP_SIZE: 0x17,
  SETUP_DATA: 0x18,
};

function bzImage(
  opts: { setupSects?: number; version?: number; loadflags?: number; bodySize?: number } = {},
): Uint8Array {
  const setupSects = opts.setupSects ?? 2;
  const setupSize = ((setupSects || 4) + 1) * 512;
  const img = new Uint8Array(setupSize + (opts.bodySize ?? 5000));
  const dv = new DataView(img.buffer);
  dv.setUint8(0x1f1, setupSects);
  dv.setUint32(0x202, 0x53726448, true); // "HdrS"
  dv.setUint16(0x206, opts.version ?? 0x020f, true);
  dv.setUint8(0x211, opts.loadflags ?? 0x01);
  dv.setUint32(0x22c, 0x7fff_ffff, true); // initrd_addr_max
  dv.setUint32(0x238, 2048, true); // cmdline_size
  for (let i = setupSize; i < img.length; i++) img[i] = i & 0xff;
  return img;
}

const u32 = (b: Uint8Array | undefined): number => new DataView(b!.buffer, b!.byteOffset).getUint32(0, true);

describe('linuxBootItems', () => {
  it('splits setup from kernel and places them as a load-high kernel expects', () => {
    const img = bzImage();
    const initrd = new Uint8Array(10_000).fill(7);
    const items = linuxBootItems({ kernel: img, initrd, cmdline: 'console=ttyS0' }, 64 * MiB);
    assert.equal(u32(items.get(K.SETUP_ADDR)), 0x1_0000);
    assert.equal(u32(items.get(K.SETUP_SIZE)), 1536);
    assert.equal(u32(items.get(K.KERNEL_ADDR)), 0x10_0000);
    assert.equal(u32(items.get(K.KERNEL_SIZE)), 5000);
    assert.deepEqual(items.get(K.KERNEL_DATA), img.subarray(1536));
    assert.equal(u32(items.get(K.CMDLINE_ADDR)), 0x2_0000);
    assert.equal(u32(items.get(K.CMDLINE_SIZE)), 14);
    assert.equal(Buffer.from(items.get(K.CMDLINE_DATA)!).toString('latin1'), 'console=ttyS0\0');
    // Below the top of low RAM less 1 MiB for firmware, page-aligned.
    const initrdAddr = Math.floor((63 * MiB - 10_000) / 4096) * 4096;
    assert.equal(u32(items.get(K.INITRD_ADDR)), initrdAddr);
    assert.equal(u32(items.get(K.INITRD_SIZE)), 10_000);
    assert.deepEqual(items.get(K.INITRD_DATA), initrd);

    const setup = items.get(K.SETUP_DATA)!;
    const sv = new DataView(setup.buffer, setup.byteOffset);
    assert.equal(setup.length, 1536);
    assert.equal(sv.getUint8(0x210), 0xb0, 'type_of_loader');
    assert.equal(sv.getUint8(0x211), 0x81, 'loadflags: LOADED_HIGH | CAN_USE_HEAP');
    assert.equal(sv.getUint16(0x224, true), 0xfe00, 'heap_end_ptr');
    assert.equal(sv.getUint32(0x228, true), 0x2_0000, 'cmd_line_ptr');
    assert.equal(sv.getUint32(0x218, true), initrdAddr, 'ramdisk_image');
    assert.equal(sv.getUint32(0x21c, true), 10_000, 'ramdisk_size');
    assert.equal(img[0x210], 0, 'the caller’s image is not modified');
  });

  it('reads setup_sects 0 as 4, and gives an empty command line and no initrd', () => {
    const items = linuxBootItems({ kernel: bzImage({ setupSects: 0 }) }, 64 * MiB);
    assert.equal(u32(items.get(K.SETUP_SIZE)), 2560);
    assert.deepEqual(Array.from(items.get(K.CMDLINE_DATA)!), [0]);
    assert.equal(u32(items.get(K.INITRD_SIZE)), 0);
    assert.equal(items.has(K.INITRD_DATA), false);
  });

  const bad: [string, () => unknown][] = [
    ['a tiny file', () => linuxBootItems({ kernel: new Uint8Array(100) }, 64 * MiB)],
    ['no setup header', () => linuxBootItems({ kernel: new Uint8Array(8192) }, 64 * MiB)],
    ['protocol 2.01', () => linuxBootItems({ kernel: bzImage({ version: 0x201 }) }, 64 * MiB)],
    ['a zImage', () => linuxBootItems({ kernel: bzImage({ loadflags: 0 }) }, 64 * MiB)],
    ['setup as big as the image', () => linuxBootItems({ kernel: bzImage({ bodySize: 0 }) }, 64 * MiB)],
    ['a long command line', () => linuxBootItems({ kernel: bzImage(), cmdline: 'x'.repeat(2049) }, 64 * MiB)],
    ['a kernel bigger than RAM', () => linuxBootItems({ kernel: bzImage({ bodySize: 4 * MiB }) }, 4 * MiB)],
    [
      'an initrd that does not fit',
      () => linuxBootItems({ kernel: bzImage(), initrd: new Uint8Array(8 * MiB) }, 8 * MiB),
    ],
  ];
  for (const [what, fn] of bad) {
    it(`refuses ${what}`, () => {
      assert.throws(fn, (e: unknown) => e instanceof FwCfgKernelError && e.code === 'FWCFG_KERNEL');
    });
  }
});

describe('FwCfgBuilder.kernel through the device', () => {
  it('serves the kernel items to the guest, bounded by the RAM size', () => {
    const img = bzImage();
    const desc = QemuFwCfg.describe(
      new FwCfgBuilder()
        .cpus(1)
        .ramSize(32 * MiB)
        .kernel({ kernel: img, cmdline: 'quiet' }),
    );
    const guest = new FakeHost();
    QemuFwCfg.attach(desc, guest);
    const read = (key: number, n: number): number[] => {
      guest.pio.write(0x510, 2, key);
      return Array.from({ length: n }, () => guest.pio.read(0x511, 1));
    };
    assert.deepEqual(read(K.KERNEL_SIZE, 4), [0x88, 0x13, 0, 0]); // 5000
    assert.deepEqual(read(K.KERNEL_DATA, 4), Array.from(img.subarray(1536, 1540)));
    assert.equal(Buffer.from(read(K.CMDLINE_DATA, 6)).toString('latin1'), 'quiet\0');
    assert.deepEqual(read(K.SETUP_DATA, 0x212).slice(0x210), [0xb0, 0x81]);
  });
});
