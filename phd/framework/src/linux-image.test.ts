// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The `linux-disk` image built from Debian packages (linux-image.ts): its
// MBR and partition, its file system (e2fsck, debugfs), the initrd, and a
// real boot under propolis (in-process PcPlatform, Debian's SeaBIOS, the
// image on a virtio disk) as far as GRUB's marker on COM1. Linux itself
// cannot boot on this project's hosts (no hardware virtualization), so the
// boot stops there. The image is built once and cached under .cache/phd/.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileBackend } from '../../../lib/propolis/src/block/file.js';
import { PcPlatform } from '../../../lib/propolis/src/platform/pc.js';
import { debianFile } from '../../../lib/propolis/src/testing/debian.js';
import { ArtifactStore } from './artifacts.js';
import {
  BOOT_DRIVE,
  BOOT_KERNEL_SECTOR,
  buildLinuxImageInitrd,
  DISKBOOT_BLOCKLIST,
  e2fsTool,
  fixCoreBlocklist,
  LINUX_IMAGE_GRUB_MARKER,
  PARTITION_MIB,
  PARTITION_START,
  SECTOR,
} from './linux-image.js';

describe('linux-disk image built from Debian packages', () => {
  let image = '';
  let disk: Buffer = Buffer.alloc(0);
  let tmp = '';
  let part = '';

  before(() => {
    image = new ArtifactStore().path('linux-disk');
    disk = readFileSync(image);
    tmp = mkdtempSync(join(tmpdir(), 'phd-linux-image-'));
    part = join(tmp, 'part.img');
    writeFileSync(part, disk.subarray(PARTITION_START * SECTOR));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('has an MBR with boot.img, one active Linux partition at 2048, and core.img behind it', () => {
    assert.equal(disk.readUInt16LE(0x1fe), 0xaa55, 'boot signature');
    assert.equal(disk[0], 0xeb, "boot.img's short jump");
    assert.equal(disk.readBigUInt64LE(BOOT_KERNEL_SECTOR), 1n, 'core.img at sector 1');
    assert.equal(disk[BOOT_DRIVE], 0x80, 'boot drive');
    const e = 0x1be;
    assert.equal(disk[e], 0x80, 'active');
    assert.equal(disk[e + 4], 0x83, 'Linux partition type');
    assert.equal(disk.readUInt32LE(e + 8), PARTITION_START);
    assert.equal(disk.readUInt32LE(e + 12), (PARTITION_MIB * 1024 * 1024) / SECTOR);
    assert.ok(
      disk.subarray(e + 16, 0x1fe).every((b) => b === 0),
      'the other three entries are empty',
    );
    assert.equal(disk.length, (PARTITION_START + disk.readUInt32LE(e + 12)) * SECTOR);
    // core.img's first sector (diskboot.img) loads the rest from sector 2.
    assert.equal(disk.readBigUInt64LE(SECTOR + DISKBOOT_BLOCKLIST), 2n);
    const rest = disk.readUInt16LE(SECTOR + DISKBOOT_BLOCKLIST + 8);
    assert.ok(rest > 10 && rest < PARTITION_START - 2, `core.img's remaining sectors: ${rest}`);
    assert.equal(disk.readUInt16LE(SECTOR + DISKBOOT_BLOCKLIST + 10), 0x820, 'load segment');
  });

  it('fixCoreBlocklist describes every sector after the first', () => {
    const core = new Uint8Array(SECTOR * 5 + 7);
    new DataView(core.buffer).setUint16(DISKBOOT_BLOCKLIST + 10, 0x820, true);
    assert.equal(fixCoreBlocklist(core), 6);
    const v = new DataView(core.buffer);
    assert.equal(v.getBigUint64(DISKBOOT_BLOCKLIST, true), 2n);
    assert.equal(v.getUint16(DISKBOOT_BLOCKLIST + 8, true), 5);
  });

  it('has a clean ext2 file system with the kernel, initrd and GRUB configuration', () => {
    execFileSync(e2fsTool('e2fsck'), ['-fn', part], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ls = (dir: string): string =>
      execFileSync(e2fsTool('debugfs'), ['-R', `ls -l ${dir}`, part], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    const boot = ls('/boot');
    assert.match(boot, /\svmlinuz\s*$/m);
    assert.match(boot, /\sinitrd\s*$/m);
    const grub = ls('/boot/grub');
    assert.match(grub, /\sgrub\.cfg\s*$/m);
    assert.match(ls('/boot/grub/i386-pc'), /\snormal\.mod\s*$/m);
    const cfg = execFileSync(e2fsTool('debugfs'), ['-R', 'cat /boot/grub/grub.cfg', part], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.match(cfg, /^terminal_output serial$/m);
    assert.match(cfg, /^linux \/boot\/vmlinuz console=ttyS0/m);
  });

  it("builds an initrd whose root logs in without a password on ttyS0's getty", () => {
    const cpio = Buffer.from(buildLinuxImageInitrd(new Uint8Array([1, 2, 3]))).toString('latin1');
    assert.match(cpio, /root::0:0:root:\/root:\/bin\/sh/);
    assert.match(cpio, /ttyS0::respawn:\/sbin\/getty -L 115200 ttyS0/);
    assert.match(cpio, /PS1='root@debian:~# '/);
    assert.match(cpio, /exec \/bin\/busybox init/);
  });

  it('boots under SeaBIOS from a virtio disk as far as GRUB running grub.cfg', async () => {
    const pc = await PcPlatform.create({
      name: 'linux-image',
      cpus: 1,
      memoryMiB: 256,
      bootrom: new Uint8Array(readFileSync(debianFile('seabios', 'usr/share/seabios/bios-256k.bin'))),
      disks: [
        {
          name: 'disk0',
          driver: 'virtio',
          pciPath: '0.4.0',
          backend: FileBackend.describe('img', { path: image, readOnly: true }),
        },
      ],
    });
    const com1 = pc.com.com1;
    com1.setSinkAttached(true);
    let serial = '';
    let stop = false;
    const timeoutMs = 60_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no GRUB marker in ${timeoutMs} ms; COM1: ${serial}`)), timeoutMs);
        pc.machine.onEvent((e) => reject(new Error(`unexpected ${JSON.stringify(e)}; COM1: ${serial}`)));
        void (async () => {
          while (!stop) {
            await com1.output.waitReadable();
            serial += Buffer.from(com1.output.drain()).toString('latin1');
            com1.pump();
            if (serial.includes(LINUX_IMAGE_GRUB_MARKER)) {
              clearTimeout(t);
              resolve();
              return;
            }
          }
        })();
        pc.machine.start().catch(reject);
      });
      assert.match(serial, /SeaBIOS \(version/);
      assert.match(serial, /Booting from Hard Disk/);
      // GRUB may clear the screen mid-banner (the "!" is sometimes overwritten): match the stable prefix.
      assert.match(serial, /GRUB loading\.[^]*Welcome to GRUB/, 'boot.img and diskboot.img loaded core.img');
    } finally {
      stop = true;
      com1.output.wake();
      await pc.machine.destroy();
    }
  });
});
