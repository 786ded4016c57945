// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Direct kernel boot: the bzImage checks and header patching, and an
// end-to-end run of Debian's SeaBIOS with Debian's linuxboot_dma.bin
// loading guests/out/fakelinux.bzimage, whose setup code reports on COM1
// what the loader handed it and exits through isa-debug-exit.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FwCfgBuilder } from '../hw/qemu/fwcfg-builder.js';
import { FwCfgKey } from '../hw/qemu/fwcfg-abi.js';
import { debianFile } from '../testing/debian.js';
import { REPO_ROOT } from '../testing/guests.js';
import {
  addDirectBoot,
  DirectBootError,
  directBootItems,
  LINUXBOOT_BOOT_PATH,
  loadLinuxbootRom,
  parseBzImage,
} from './direct-boot.js';
import { PcPlatform } from './pc.js';

const MiB = 1 << 20;

/** A synthetic bzImage: `setupSects` setup sectors, `kernelBytes` of protected-mode code. */
function bzImage(opts: { setupSects?: number; version?: number; loadflags?: number; kernelBytes?: number } = {}) {
  const sects = opts.setupSects ?? 4;
  const img = new Uint8Array(((sects || 4) + 1) * 512 + (opts.kernelBytes ?? 8192));
  const dv = new DataView(img.buffer);
  dv.setUint8(0x1f1, sects);
  dv.setUint16(0x1fe, 0xaa55, true);
  img.set(new TextEncoder().encode('HdrS'), 0x202);
  dv.setUint16(0x206, opts.version ?? 0x20f, true);
  dv.setUint8(0x211, opts.loadflags ?? 0x01);
  dv.setUint32(0x22c, 0x37ff_ffff, true); // initrd_addr_max
  dv.setUint32(0x238, 2047, true); // cmdline_size
  for (let i = ((sects || 4) + 1) * 512; i < img.length; i++) img[i] = i & 0xff;
  return img;
}

function u32(items: Map<number, Uint8Array>, key: number): number {
  const v = items.get(key);
  assert.ok(v, `item 0x${key.toString(16)}`);
  assert.equal(v.byteLength, 4);
  return new DataView(v.buffer, v.byteOffset).getUint32(0, true);
}

const fakeRom = (): Uint8Array => {
  const r = new Uint8Array(1024);
  r[0] = 0x55;
  r[1] = 0xaa;
  r[2] = 2;
  return r;
};

describe('direct kernel boot: bzImage checks and setup header', () => {
  it('splits the image at (setup_sects+1)*512, 0 meaning 4', () => {
    assert.equal(parseBzImage(bzImage({ setupSects: 1 })).setupSize, 1024);
    const info = parseBzImage(bzImage({ setupSects: 0, kernelBytes: 4096 }));
    assert.deepEqual(info, { version: 0x20f, setupSects: 4, loadflags: 1, setupSize: 2560, kernelSize: 4096 });
  });

  it('produces the fw_cfg kernel items with a patched header', () => {
    const img = bzImage({ setupSects: 2, kernelBytes: 12345 });
    const initrd = new Uint8Array(10000).fill(7);
    const low = 256 * MiB;
    const items = directBootItems({ kernel: img, initrd, cmdline: 'console=ttyS0 phd=1' }, low);
    assert.equal(u32(items, FwCfgKey.SETUP_ADDR), 0x10000);
    assert.equal(u32(items, FwCfgKey.SETUP_SIZE), 1536);
    assert.equal(u32(items, FwCfgKey.KERNEL_ADDR), 0x100000);
    assert.equal(u32(items, FwCfgKey.KERNEL_SIZE), 12345);
    assert.deepEqual(items.get(FwCfgKey.KERNEL_DATA), img.subarray(1536));
    assert.equal(u32(items, FwCfgKey.CMDLINE_ADDR), 0x20000);
    assert.equal(u32(items, FwCfgKey.CMDLINE_SIZE), 'console=ttyS0 phd=1'.length + 1, 'size includes the NUL');
    assert.deepEqual(items.get(FwCfgKey.CMDLINE_DATA), new TextEncoder().encode('console=ttyS0 phd=1\0'));
    const initrdAddr = u32(items, FwCfgKey.INITRD_ADDR);
    assert.equal(initrdAddr % 4096, 0, 'initrd 4 KiB aligned');
    assert.ok(initrdAddr + initrd.byteLength <= low && initrdAddr >= low - 2 * MiB, 'initrd near the top of low RAM');
    assert.equal(u32(items, FwCfgKey.INITRD_SIZE), 10000);
    assert.deepEqual(items.get(FwCfgKey.INITRD_DATA), initrd);

    const setup = items.get(FwCfgKey.SETUP_DATA);
    assert.ok(setup);
    assert.equal(setup.byteLength, 1536);
    const dv = new DataView(setup.buffer, setup.byteOffset, setup.byteLength);
    assert.ok([0xff, 0xb0].includes(dv.getUint8(0x210)), 'type_of_loader');
    assert.equal(dv.getUint8(0x211), 0x81, 'loadflags: LOADED_HIGH | CAN_USE_HEAP');
    assert.equal(dv.getUint16(0x224, true), 0x20000 - 0x10000 - 0x200, 'heap_end_ptr below the command line');
    assert.equal(dv.getUint32(0x228, true), 0x20000, 'cmd_line_ptr');
    assert.equal(dv.getUint32(0x218, true), initrdAddr, 'ramdisk_image');
    assert.equal(dv.getUint32(0x21c, true), 10000, 'ramdisk_size');
    assert.equal(img[0x228], 0, 'the caller’s image is not modified');
  });

  it('keeps the initrd under initrd_addr_max', () => {
    const img = bzImage();
    new DataView(img.buffer).setUint32(0x22c, 0x0fff_ffff, true);
    const items = directBootItems({ kernel: img, initrd: new Uint8Array(5000) }, 1024 * MiB);
    const addr = u32(items, FwCfgKey.INITRD_ADDR);
    assert.ok(addr + 5000 <= 0x1000_0000 && addr % 4096 === 0, `0x${addr.toString(16)}`);
  });

  it('rejects images it cannot boot with a DirectBootError', () => {
    const bad = (f: () => unknown, re: RegExp) =>
      assert.throws(f, (e: unknown) => e instanceof DirectBootError && re.test(e.message));
    bad(() => parseBzImage(new Uint8Array(100)), /too small/);
    bad(() => parseBzImage(new Uint8Array(4096)), /not a Linux bzImage/);
    bad(() => parseBzImage(bzImage({ version: 0x202 })), /protocol 2\.02.*2\.04 or later/);
    bad(() => parseBzImage(bzImage({ loadflags: 0 })), /zImage/);
    bad(() => parseBzImage(bzImage({ kernelBytes: 0 })), /no protected-mode part/);
    bad(() => directBootItems({ kernel: bzImage({ kernelBytes: 40 * MiB }) }, 32 * MiB), /does not fit/);
    bad(
      () => directBootItems({ kernel: bzImage(), initrd: new Uint8Array(30 * MiB) }, 32 * MiB),
      /initrd .* does not fit/,
    );
    bad(() => directBootItems({ kernel: bzImage(), cmdline: 'x'.repeat(3000) }, 32 * MiB), /command line/);
    bad(() => loadLinuxbootRom('/nonexistent/linuxboot_dma.bin'), /cannot read .*qemu-system-data/);
    bad(() => loadLinuxbootRom(new Uint8Array(512)), /not an option ROM/);
  });

  it('adds the items and genroms/linuxboot_dma.bin to a fw_cfg builder', () => {
    const b = new FwCfgBuilder().cpus(1).ramSize(64 * MiB);
    const path = addDirectBoot(b, { kernel: bzImage(), cmdline: 'x', linuxbootRom: fakeRom() }, 64 * MiB);
    assert.equal(path, '/rom@genroms/linuxboot_dma.bin');
    assert.equal(path, LINUXBOOT_BOOT_PATH);
    const image = b.build();
    const names = image.items.map((i) => i.name).filter((n) => n !== undefined);
    assert.ok(names.includes('genroms/linuxboot_dma.bin'), names.join(','));
    const keys = image.items.map((i) => i.key);
    for (const k of [0x07, 0x08, 0x0a, 0x0b, 0x11, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]) {
      assert.ok(keys.includes(k), `key 0x${k.toString(16)}`);
    }
  });
});

const FAKELINUX = join(REPO_ROOT, 'guests', 'out', 'fakelinux.bzimage');

describe('direct kernel boot through SeaBIOS and linuxboot_dma.bin', () => {
  it('runs fakelinux setup with the command line and initrd the loader placed (exit 0x31)', async () => {
    const bios = new Uint8Array(readFileSync(debianFile('seabios', 'usr/share/seabios/bios-256k.bin')));
    const rom = new Uint8Array(readFileSync(debianFile('qemu-system-data', 'usr/share/qemu/linuxboot_dma.bin')));
    const kernel = new Uint8Array(readFileSync(FAKELINUX));
    const initrd = new Uint8Array(64 * 1024).fill(0x5a);
    const cmdline = 'console=ttyS0 phd=1';
    const pc = await PcPlatform.create({
      name: 'direct-boot',
      cpus: 1,
      memoryMiB: 128,
      bootrom: bios,
      debugExits: [{ name: 'exit', port: 0x501, size: 1 }],
      directBoot: { kernel, initrd, cmdline, linuxbootRom: rom },
    });
    const com1 = pc.com.com1;
    com1.setSinkAttached(true);
    let serial = '';
    let debug = '';
    const dbg = pc.debugPort.pipeTo((b) => (debug += Buffer.from(b).toString('latin1')));
    let stop = false;
    try {
      const status = await new Promise<number | undefined>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no halt in 90 s; COM1: ${serial}\ndebug: ${debug}`)), 90000);
        pc.machine.onEvent((e) => {
          clearTimeout(t);
          if (e.type === 'halt') resolve(e.status);
          else reject(new Error(`unexpected ${JSON.stringify(e)}; COM1: ${serial}\ndebug: ${debug}`));
        });
        void (async () => {
          while (!stop) {
            await com1.output.waitReadable();
            serial += Buffer.from(com1.output.drain()).toString('latin1');
            com1.pump();
          }
        })();
        pc.machine.start().catch(reject);
      });
      serial += Buffer.from(com1.output.drain()).toString('latin1');
      assert.equal(status, (0x31 << 1) | 1, `COM1: ${serial}\ndebug: ${debug}`);
      assert.match(serial, /fakelinux: setup entered\r\n/);
      assert.match(serial, /fakelinux: cmdline "console=ttyS0 phd=1"\r\n/);
      const m = /fakelinux: initrd ([0-9a-f]{8}) ([0-9a-f]{8}) loader ([0-9a-f]{8})/.exec(serial);
      assert.ok(m, serial);
      const addr = parseInt(m[1]!, 16);
      assert.equal(parseInt(m[2]!, 16), initrd.byteLength, 'ramdisk_size');
      assert.ok(addr > 0x100000 && addr % 4096 === 0 && addr + initrd.byteLength <= 128 * MiB, `ramdisk_image ${m[1]}`);
      assert.ok(['000000b0', '000000ff'].includes(m[3]!), `type_of_loader ${m[3]}`);
      // The loader really copied the initrd: check guest RAM at ramdisk_image.
      const copied = new Uint8Array(initrd.byteLength);
      assert.ok(pc.machine.mem.read(addr, copied));
      assert.deepEqual(copied, initrd);
      const setupCmdline = new Uint8Array(cmdline.length + 1);
      assert.ok(pc.machine.mem.read(0x20000, setupCmdline));
      assert.equal(Buffer.from(setupCmdline).toString('latin1'), `${cmdline}\0`);
    } finally {
      stop = true;
      com1.output.wake();
      if (pc.machine.cpus > 0) await pc.machine.pause().catch(() => {});
      await dbg.close();
      await pc.machine.destroy();
    }
  });
});
