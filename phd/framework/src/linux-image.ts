// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The `linux-disk` guest built from Debian packages: a raw disk image that
// firmware boots through GRUB into Linux with a root login on ttyS0, made
// from files only (no loop mounts, no root-only tools).
//
// Layout of the image (512-byte sectors):
//
// | sectors      | what |
// | ------------ | ---- |
// | 0            | MBR: GRUB's boot.img (bytes 0–445, patched, see below), the partition table (446–509), 0x55AA |
// | 1 ..         | GRUB's core.img (grub-mkimage -O i386-pc: diskboot.img, then the compressed kernel, GRUB_CORE_MODULES) |
// | 2048 .. end  | partition 1 (type 0x83, active): ext2 made by `mke2fs -d` from a staging directory |
//
// The partition holds /boot/vmlinuz (linux-image-cloud-amd64's kernel),
// /boot/initrd (a busybox-static initramfs, LINUX_IMAGE_INITRD_INIT below),
// /boot/grub/grub.cfg and /boot/grub/i386-pc/ (GRUB's modules, for what
// normal mode loads on demand). Linux runs entirely from the initramfs:
// /init execs busybox init, whose inittab keeps a getty on ttyS0; root has
// an empty password, so `login` asks none. The login prompt and shell
// prompt are DEBIAN_LOGIN's (`debian login: `, `root@debian:~# `).
//
// What is patched, from GRUB's boot.S / diskboot.S layout:
//  - boot.img 0x5C (8 bytes, little endian, `kernel_sector`): the LBA of
//    core.img's first sector, 1.
//  - boot.img 0x64 (`boot_drive`): 0x80, the first hard disk, instead of
//    0xFF ("the drive the BIOS booted from"), as grub-install does for a disk.
//  - boot.img 0x1BE–0x1FF: never taken from boot.img; the partition table
//    and the 0x55AA signature are ours.
//  - core.img sector 0 (diskboot.img) ends with one blocklist entry at
//    0x1F4: start sector (8 bytes), sector count (2 bytes), load segment
//    (2 bytes). It must describe the rest of core.img: start 2, count =
//    core.img's sectors − 1. grub-mkimage already writes that (it assumes
//    sector 1); the builder checks and rewrites both fields anyway.
//
// Threading: main thread; building blocks on apt-get, grub-mkimage and mke2fs.

import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { debianFile, debianPackage } from '../../../lib/propolis/src/testing/debian.js';
import { cpioNewc, type CpioEntry } from './cpio.js';

export const SECTOR = 512;
/** First sector of the one partition. */
export const PARTITION_START = 2048;
/** Size of the partition (the kernel is ~14 MiB). */
export const PARTITION_MIB = 64;
/** Bumped when the layout or contents change, so cached images are rebuilt. */
export const LINUX_IMAGE_VERSION = 2;

/** What GRUB prints on the serial console before it loads the kernel (the test waits for it). */
export const LINUX_IMAGE_GRUB_MARKER = 'phd-linux-image: grub ok';

/** boot.img field offsets (grub-core/boot/i386/pc/boot.S, include/grub/i386/pc/boot.h). */
export const BOOT_KERNEL_SECTOR = 0x5c;
export const BOOT_DRIVE = 0x64;
/** Where the partition table starts; boot.img's code ends before it. */
export const MBR_PARTITION_TABLE = 0x1be;
/** diskboot.img's last blocklist entry (grub-core/boot/i386/pc/diskboot.S: `firstlist`). */
export const DISKBOOT_BLOCKLIST = 0x1f4;

/**
 * The modules built into core.img: just enough to read the partition. The
 * kernel then loads `normal` from $prefix (/boot/grub/i386-pc), and normal
 * mode loads what grub.cfg's commands need (serial, terminal, echo, linux)
 * through command.lst. Under KVM's instruction emulator, where GRUB runs on
 * hosts without hardware virtualization, this reaches grub.cfg in ~20 s; a
 * core.img with normal, linux and the rest built in takes ~40 s, most of it
 * decompressing core.img (always LZMA for i386-pc).
 */
export const GRUB_CORE_MODULES: readonly string[] = ['biosdisk', 'part_msdos', 'ext2'];

export class LinuxImageError extends Error {
  readonly code = 'LINUX_IMAGE';
}

export const LINUX_IMAGE_GRUB_CFG = `serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
echo '${LINUX_IMAGE_GRUB_MARKER}'
linux /boot/vmlinuz console=ttyS0,115200 panic=-1 rdinit=/init
initrd /boot/initrd
boot
`;

/** The initrd's /init: pseudo file systems, the host name, then busybox init (which handles `reboot`). */
export const LINUX_IMAGE_INITRD_INIT = `#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
hostname debian
exec /bin/busybox init
`;

const INITTAB = `ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`;

// A literal prompt: busybox's static build may lack the fancy-prompt escapes.
const PROFILE = `export PS1='root@debian:~# ' PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root
cd /root
`;

/** The image's initramfs: busybox, /init, busybox init's inittab, and a root account with no password. */
export function buildLinuxImageInitrd(busybox: Uint8Array): Uint8Array {
  const dirs = ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'dev', 'proc', 'sys', 'tmp', 'run', 'root'];
  const entries: CpioEntry[] = [
    ...dirs.map((path) => ({ type: 'dir', path, mode: path === 'tmp' ? 0o1777 : 0o755 }) as const),
    { type: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'file', path: 'init', data: LINUX_IMAGE_INITRD_INIT, mode: 0o755 },
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'file', path: 'etc/passwd', data: 'root::0:0:root:/root:/bin/sh\n' },
    { type: 'file', path: 'etc/group', data: 'root:x:0:\n' },
    { type: 'file', path: 'etc/hostname', data: 'debian\n' },
    { type: 'file', path: 'etc/issue', data: '\n' },
    { type: 'file', path: 'etc/inittab', data: INITTAB },
    { type: 'file', path: 'etc/profile', data: PROFILE },
  ];
  return cpioNewc(entries);
}

/** Patch GRUB's boot.img into an MBR: core.img at `kernelSector`, drive 0x80; bytes from 446 on are left as 0. */
export function patchBootImg(bootImg: Uint8Array, kernelSector = 1): Uint8Array {
  if (bootImg.length !== SECTOR) throw new LinuxImageError(`boot.img is ${bootImg.length} bytes, not ${SECTOR}`);
  if (bootImg[0] !== 0xeb) throw new LinuxImageError('boot.img does not start with a short jump');
  const mbr = new Uint8Array(SECTOR);
  mbr.set(bootImg.subarray(0, MBR_PARTITION_TABLE));
  const v = new DataView(mbr.buffer);
  v.setBigUint64(BOOT_KERNEL_SECTOR, BigInt(kernelSector), true);
  mbr[BOOT_DRIVE] = 0x80;
  return mbr;
}

/** CHS of an LBA on the usual 255-head, 63-sector geometry, as the 3 bytes of a partition entry (capped at 1023/254/63). */
function chs(lba: number): [number, number, number] {
  const spt = 63;
  const heads = 255;
  let c = Math.floor(lba / (spt * heads));
  let h = Math.floor(lba / spt) % heads;
  let s = (lba % spt) + 1;
  if (c > 1023) [c, h, s] = [1023, 254, 63];
  return [h, ((c >> 2) & 0xc0) | s, c & 0xff];
}

/** Write one active Linux (0x83) partition entry and the 0x55AA signature into an MBR. */
export function writePartitionTable(mbr: Uint8Array, start: number, sectors: number): void {
  const e = MBR_PARTITION_TABLE;
  mbr.fill(0, e, SECTOR);
  mbr[e] = 0x80;
  mbr.set(chs(start), e + 1);
  mbr[e + 4] = 0x83;
  mbr.set(chs(start + sectors - 1), e + 5);
  const v = new DataView(mbr.buffer, mbr.byteOffset);
  v.setUint32(e + 8, start, true);
  v.setUint32(e + 12, sectors, true);
  mbr[0x1fe] = 0x55;
  mbr[0x1ff] = 0xaa;
}

/**
 * Check, and set, the blocklist diskboot.img (core.img's first sector)
 * loads the rest of core.img from: it starts at sector `coreSector + 1` and
 * covers every further sector. Returns the sector count of core.img.
 */
export function fixCoreBlocklist(core: Uint8Array, coreSector = 1): number {
  const sectors = Math.ceil(core.length / SECTOR);
  if (sectors < 2) throw new LinuxImageError(`core.img is only ${core.length} bytes`);
  const v = new DataView(core.buffer, core.byteOffset);
  const segment = v.getUint16(DISKBOOT_BLOCKLIST + 10, true);
  if (segment !== 0x820) throw new LinuxImageError(`core.img's blocklist has load segment 0x${segment.toString(16)}`);
  v.setBigUint64(DISKBOOT_BLOCKLIST, BigInt(coreSector + 1), true);
  v.setUint16(DISKBOOT_BLOCKLIST + 8, sectors - 1, true);
  return sectors;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new LinuxImageError(`${cmd} ${args.join(' ')} failed: ${(err.stderr || err.stdout || err.message).trim()}`);
  }
}

/** An e2fsprogs tool (mke2fs, e2fsck, debugfs): the host's, else Debian's e2fsprogs package's. */
export function e2fsTool(name: 'mke2fs' | 'e2fsck' | 'debugfs'): string {
  for (const dir of ['/usr/sbin', '/sbin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return debianFile('e2fsprogs', `sbin/${name}`);
}

export interface LinuxImageInputs {
  /** The kernel (bzImage). */
  kernel: string;
  /** busybox-static's busybox. */
  busybox: string;
  /** Root of the unpacked grub-common package (grub-mkimage). */
  grubCommon: string;
  /** Root of the unpacked grub-pc-bin package (usr/lib/grub/i386-pc). */
  grubPcBin: string;
  /** The modules built into core.img (default GRUB_CORE_MODULES). */
  coreModules?: readonly string[];
}

/** Assemble the image at `out` (written to a temporary file, then renamed). */
export function buildLinuxImage(out: string, inputs: LinuxImageInputs): void {
  const work = mkdtempSync(`${out}.build-`);
  try {
    const grubLib = join(inputs.grubPcBin, 'usr', 'lib', 'grub', 'i386-pc');
    // The staging directory mke2fs copies into the partition.
    const stage = join(work, 'root');
    const grubDir = join(stage, 'boot', 'grub');
    mkdirSync(join(grubDir, 'i386-pc'), { recursive: true });
    mkdirSync(join(stage, 'root'), { recursive: true });
    writeFileSync(join(stage, 'boot', 'vmlinuz'), readFileSync(inputs.kernel));
    writeFileSync(join(stage, 'boot', 'initrd'), buildLinuxImageInitrd(new Uint8Array(readFileSync(inputs.busybox))));
    writeFileSync(join(grubDir, 'grub.cfg'), LINUX_IMAGE_GRUB_CFG);
    for (const f of readdirSync(grubLib)) {
      if (f.endsWith('.mod') || f.endsWith('.lst')) {
        writeFileSync(join(grubDir, 'i386-pc', f), readFileSync(join(grubLib, f)));
      }
    }

    const coreImg = join(work, 'core.img');
    run(join(inputs.grubCommon, 'usr', 'bin', 'grub-mkimage'), [
      '-d',
      grubLib,
      '-O',
      'i386-pc',
      '-p',
      '(hd0,msdos1)/boot/grub',
      '-o',
      coreImg,
      ...(inputs.coreModules ?? GRUB_CORE_MODULES),
    ]);
    const core = new Uint8Array(readFileSync(coreImg));
    const coreSectors = fixCoreBlocklist(core);
    if (1 + coreSectors > PARTITION_START) {
      throw new LinuxImageError(`core.img (${coreSectors} sectors) does not fit before sector ${PARTITION_START}`);
    }

    const partSectors = (PARTITION_MIB * 1024 * 1024) / SECTOR;
    const part = join(work, 'part.img');
    run(e2fsTool('mke2fs'), [
      '-q',
      '-F',
      '-t',
      'ext2',
      '-L',
      'phd-linux',
      '-E',
      'root_owner=0:0',
      '-d',
      stage,
      part,
      `${PARTITION_MIB}M`,
    ]);
    const partData = readFileSync(part);
    if (partData.length !== partSectors * SECTOR) {
      throw new LinuxImageError(`mke2fs made ${partData.length} bytes, expected ${partSectors * SECTOR}`);
    }

    const mbr = patchBootImg(new Uint8Array(readFileSync(join(grubLib, 'boot.img'))));
    writePartitionTable(mbr, PARTITION_START, partSectors);
    const disk = Buffer.alloc((PARTITION_START + partSectors) * SECTOR);
    disk.set(mbr, 0);
    disk.set(core, SECTOR);
    disk.set(partData, PARTITION_START * SECTOR);
    const tmp = join(work, 'disk.img');
    writeFileSync(tmp, disk);
    renameSync(tmp, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The image for `kernelPackage` (e.g. linux-image-6.1.0-50-cloud-amd64),
 * built the first time into `cacheDir` and reused after; fetches the
 * Debian packages it needs.
 */
export function linuxImage(cacheDir: string, kernelPackage: string): string {
  const out = join(cacheDir, `${kernelPackage}.v${LINUX_IMAGE_VERSION}.img`);
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const kroot = debianPackage(kernelPackage);
  const vmlinuz = readdirSync(join(kroot, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new LinuxImageError(`${kernelPackage} has no boot/vmlinuz-*`);
  buildLinuxImage(out, {
    kernel: join(kroot, 'boot', vmlinuz),
    busybox: debianFile('busybox-static', 'bin/busybox'),
    grubCommon: debianPackage('grub-common'),
    grubPcBin: debianPackage('grub-pc-bin'),
  });
  return out;
}
