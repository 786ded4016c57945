// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Direct Linux kernel boot for the PC platform, the way QEMU's
// -kernel/-initrd/-append work with SeaBIOS: the VMM does what a boot
// loader would (split the bzImage, patch its setup header, choose where
// setup, command line, kernel and initrd go) and hands the pieces to the
// firmware as the fw_cfg kernel items (0x07/0x08, 0x0a/0x0b, 0x11–0x18).
// SeaBIOS runs every fw_cfg file named `genroms/*` as an option ROM; QEMU's
// `linuxboot_dma.bin` (Debian package qemu-system-data) is such a ROM: it
// registers a boot entry that copies the pieces into guest RAM with fw_cfg
// DMA and jumps to the real-mode setup code. Its boot path
// `/rom@genroms/linuxboot_dma.bin` goes first in `bootorder`.
//
// The layout and header rules are those of Linux's x86 boot protocol
// (Documentation/arch/x86/boot.rst); hw/qemu/linux-boot.ts implements them.
// This module adds the platform's stricter checks (protocol 2.04 or later,
// a 32-bit syssize field), typed errors, and finding the option ROM.
//
// Threading: pure functions plus a synchronous file read, main thread (at
// platform creation).

import { readFileSync } from 'node:fs';
import type { FwCfgBuilder } from '../hw/qemu/fwcfg-builder.js';
import { FwCfgKernelError, linuxBootItems } from '../hw/qemu/linux-boot.js';

export class DirectBootError extends Error {
  readonly code = 'DIRECT_BOOT';
}

/** Where Debian's qemu-system-data installs the loader ROM. */
export const LINUXBOOT_ROM_DEFAULT_PATH = '/usr/share/qemu/linuxboot_dma.bin';
/** The fw_cfg file SeaBIOS finds the ROM under. */
export const LINUXBOOT_ROM_FILE = 'genroms/linuxboot_dma.bin';
/** The ROM's boot entry in `bootorder` (SeaBIOS's name for a fw_cfg option ROM). */
export const LINUXBOOT_BOOT_PATH = `/rom@${LINUXBOOT_ROM_FILE}`;

export interface DirectBootConfig {
  /** The bzImage file. */
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
  /** The loader option ROM: its bytes, or a path (default LINUXBOOT_ROM_DEFAULT_PATH). */
  linuxbootRom?: string | Uint8Array;
}

/** What the setup header says about a bzImage. */
export interface BzImageInfo {
  /** Boot protocol version, e.g. 0x20f for 2.15. */
  version: number;
  /** Setup sectors after the boot sector (a 0 in the header means 4). */
  setupSects: number;
  loadflags: number;
  /** Bytes of the real-mode part: boot sector plus setup sectors. */
  setupSize: number;
  /** Bytes of the protected-mode kernel that follows. */
  kernelSize: number;
}

const OFF_SETUP_SECTS = 0x1f1;
const OFF_MAGIC = 0x202;
const OFF_VERSION = 0x206;
const OFF_LOADFLAGS = 0x211;
/** The setup header ends at 0x268 in protocol 2.15; we need at least through cmdline_size (0x23c). */
const MIN_IMAGE = 0x240;
const MAGIC = 'HdrS';
const MIN_VERSION = 0x204;
const LOADED_HIGH = 0x01;

function protocol(v: number): string {
  return `${v >> 8}.${(v & 0xff).toString().padStart(2, '0')}`;
}

/** Checks the setup header of a bzImage and reports its shape. Throws DirectBootError when it is not one we can boot. */
export function parseBzImage(img: Uint8Array): BzImageInfo {
  if (img.byteLength < MIN_IMAGE) {
    throw new DirectBootError(`kernel image is ${img.byteLength} bytes, too small to be a Linux bzImage`);
  }
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const magic = String.fromCharCode(...img.subarray(OFF_MAGIC, OFF_MAGIC + 4));
  if (magic !== MAGIC) {
    throw new DirectBootError('kernel image is not a Linux bzImage: no "HdrS" setup header at offset 0x202');
  }
  const version = dv.getUint16(OFF_VERSION, true);
  if (version < MIN_VERSION) {
    throw new DirectBootError(
      `kernel uses boot protocol ${protocol(version)}; direct boot needs ${protocol(MIN_VERSION)} or later`,
    );
  }
  const loadflags = dv.getUint8(OFF_LOADFLAGS);
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new DirectBootError('kernel image is a zImage (loads low at 0x10000); direct boot needs a bzImage');
  }
  const setupSects = dv.getUint8(OFF_SETUP_SECTS) || 4;
  const setupSize = (setupSects + 1) * 512;
  if (setupSize >= img.byteLength) {
    throw new DirectBootError(
      `kernel image (${img.byteLength} bytes) has no protected-mode part after its ${setupSize}-byte setup`,
    );
  }
  return { version, setupSects, loadflags, setupSize, kernelSize: img.byteLength - setupSize };
}

/**
 * The fw_cfg kernel items for booting `cfg.kernel` on a machine with
 * `lowRamBytes` of RAM below the 32-bit hole: setup at 0x10000, command line
 * at 0x20000, kernel at 1 MiB, initrd as high as the kernel allows under
 * low RAM (less 1 MiB kept for the firmware), 4 KiB aligned.
 */
export function directBootItems(cfg: DirectBootConfig, lowRamBytes: number): Map<number, Uint8Array> {
  parseBzImage(cfg.kernel);
  try {
    return linuxBootItems(
      {
        kernel: cfg.kernel,
        ...(cfg.initrd ? { initrd: cfg.initrd } : {}),
        ...(cfg.cmdline !== undefined ? { cmdline: cfg.cmdline } : {}),
      },
      lowRamBytes,
    );
  } catch (e) {
    if (e instanceof FwCfgKernelError) throw new DirectBootError(e.message);
    throw e;
  }
}

/** The loader option ROM's bytes, checked for the 0x55AA option ROM signature. */
export function loadLinuxbootRom(src: string | Uint8Array = LINUXBOOT_ROM_DEFAULT_PATH): Uint8Array {
  let rom: Uint8Array;
  if (typeof src === 'string') {
    try {
      rom = new Uint8Array(readFileSync(src));
    } catch (e) {
      throw new DirectBootError(
        `cannot read the Linux loader option ROM ${src} (${(e as Error).message}); ` +
          'install it (Debian: apt-get install qemu-system-data) or give its path',
      );
    }
  } else {
    rom = src;
  }
  const what = typeof src === 'string' ? src : 'the Linux loader option ROM';
  if (rom.byteLength < 512 || rom.byteLength % 512 !== 0 || rom[0] !== 0x55 || rom[1] !== 0xaa) {
    throw new DirectBootError(`${what} is not an option ROM (no 0x55AA signature or not whole 512-byte blocks)`);
  }
  return rom;
}

/**
 * Adds direct kernel boot to a fw_cfg builder: the kernel items and the
 * loader ROM as `genroms/linuxboot_dma.bin`. Returns the boot path that must
 * come first in `bootorder`.
 */
export function addDirectBoot(b: FwCfgBuilder, cfg: DirectBootConfig, lowRamBytes: number): string {
  const items = directBootItems(cfg, lowRamBytes);
  const rom = loadLinuxbootRom(cfg.linuxbootRom);
  for (const [key, bytes] of items) b.item(key, bytes);
  b.file(LINUXBOOT_ROM_FILE, rom);
  return LINUXBOOT_BOOT_PATH;
}
