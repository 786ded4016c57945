// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Direct Linux kernel boot through fw_cfg: split an x86 bzImage into its
// real-mode setup and protected-mode parts, patch the setup header as a
// boot loader must (Linux's Documentation/arch/x86/boot.rst), and lay the
// pieces out as the fw_cfg kernel items (keys 0x07/0x08, 0x0a/0x0b,
// 0x11–0x18) that a loader option ROM (QEMU's linuxboot_dma.bin, passed in
// as the fw_cfg file `genroms/linuxboot_dma.bin`) reads and jumps to.
//
// Only kernels with boot protocol 2.02 or later that load high (every
// bzImage of this century) are accepted. Addresses are the ones modern
// boot loaders use for such kernels: setup at 0x10000, command line at
// 0x20000, protected-mode code at 1 MiB; the initrd goes as high as the
// kernel allows below the top of low RAM, leaving room for firmware tables.
//
// Threading: pure functions, main thread (at describe time).

import { FwCfgKey } from './fwcfg-abi.js';

export class FwCfgKernelError extends Error {
  readonly code = 'FWCFG_KERNEL';
}

/** Setup header fields (offsets into the image's first sector(s)). */
const HDR = {
  SETUP_SECTS: 0x1f1, // u8; 0 means 4
  MAGIC: 0x202, // u32 "HdrS"
  VERSION: 0x206, // u16
  TYPE_OF_LOADER: 0x210, // u8
  LOADFLAGS: 0x211, // u8
  RAMDISK_IMAGE: 0x218, // u32
  RAMDISK_SIZE: 0x21c, // u32
  HEAP_END_PTR: 0x224, // u16, protocol 2.01+
  CMD_LINE_PTR: 0x228, // u32, protocol 2.02+
  INITRD_ADDR_MAX: 0x22c, // u32, protocol 2.03+
  CMDLINE_SIZE: 0x238, // u32, protocol 2.06+
} as const;

const HDR_MAGIC = 0x5372_6448; // "HdrS" read as a little-endian u32
const LOADFLAGS_LOADED_HIGH = 0x01;
const LOADFLAGS_CAN_USE_HEAP = 0x80;
/** "Undefined loader" class with QEMU's sub-id: what firmware-loaded kernels report. */
const LOADER_TYPE = 0xb0;
const SECTOR = 512;

/** Where the pieces go, as boot loaders place a load-high kernel. */
export const LINUX_BOOT = {
  setupAddr: 0x1_0000,
  cmdlineAddr: 0x2_0000,
  kernelAddr: 0x10_0000,
  /** Before protocol 2.03 the kernel does not say; this is the documented ceiling. */
  defaultInitrdMax: 0x37ff_ffff,
  /** Kept free at the top of low RAM for the firmware's own tables (SeaBIOS allocates there). */
  firmwareReserve: 0x10_0000,
  /** Command line limit before protocol 2.06 (excluding the NUL). */
  defaultCmdlineMax: 255,
} as const;

export interface LinuxBootOptions {
  /** The bzImage file. */
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

/**
 * The fw_cfg items for booting `opts.kernel` directly.
 * `lowRamBytes` is the RAM below the 32-bit MMIO hole (starting at 0).
 */
export function linuxBootItems(opts: LinuxBootOptions, lowRamBytes: number): Map<number, Uint8Array> {
  const img = opts.kernel;
  if (img.byteLength < HDR.CMDLINE_SIZE + 4) {
    throw new FwCfgKernelError(`kernel image is ${img.byteLength} bytes, too small for a bzImage`);
  }
  const hdr = new DataView(img.buffer, img.byteOffset, img.byteLength);
  if (hdr.getUint32(HDR.MAGIC, true) !== HDR_MAGIC) {
    throw new FwCfgKernelError('kernel image is not a Linux bzImage (no "HdrS" setup header)');
  }
  const version = hdr.getUint16(HDR.VERSION, true);
  const loadflags = hdr.getUint8(HDR.LOADFLAGS);
  if (version < 0x202 || (loadflags & LOADFLAGS_LOADED_HIGH) === 0) {
    const proto = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
    const kind = loadflags & LOADFLAGS_LOADED_HIGH ? 'bzImage' : 'zImage (loads low)';
    throw new FwCfgKernelError(
      `kernel is a ${kind} of boot protocol ${proto}; need a bzImage of protocol 2.02 or later`,
    );
  }
  const setupSects = hdr.getUint8(HDR.SETUP_SECTS) || 4;
  const setupSize = (setupSects + 1) * SECTOR;
  if (setupSize >= img.byteLength) {
    throw new FwCfgKernelError(`kernel setup (${setupSize} bytes) is not smaller than the image (${img.byteLength})`);
  }
  const kernelSize = img.byteLength - setupSize;
  if (LINUX_BOOT.kernelAddr + kernelSize > lowRamBytes - LINUX_BOOT.firmwareReserve) {
    throw new FwCfgKernelError(`kernel (${kernelSize} bytes at 1 MiB) does not fit in ${lowRamBytes} bytes of low RAM`);
  }

  const cmdline = new TextEncoder().encode(opts.cmdline ?? '');
  const cmdlineMax = version >= 0x206 ? hdr.getUint32(HDR.CMDLINE_SIZE, true) : LINUX_BOOT.defaultCmdlineMax;
  if (cmdline.includes(0) || cmdline.byteLength > cmdlineMax) {
    throw new FwCfgKernelError(
      `kernel command line must be at most ${cmdlineMax} bytes without NULs; it is ${cmdline.byteLength}`,
    );
  }
  const cmdlineData = new Uint8Array(cmdline.byteLength + 1); // NUL-terminated
  cmdlineData.set(cmdline);

  // The setup part is patched: the kernel reads these fields when it starts.
  const setup = img.slice(0, setupSize);
  const sv = new DataView(setup.buffer);
  sv.setUint8(HDR.TYPE_OF_LOADER, LOADER_TYPE);
  sv.setUint8(HDR.LOADFLAGS, loadflags | LOADFLAGS_CAN_USE_HEAP);
  // The setup code's heap ends where the command line begins (less the boot sector's 0x200).
  sv.setUint16(HDR.HEAP_END_PTR, LINUX_BOOT.cmdlineAddr - LINUX_BOOT.setupAddr - 0x200, true);
  sv.setUint32(HDR.CMD_LINE_PTR, LINUX_BOOT.cmdlineAddr, true);

  let initrdAddr = 0;
  const initrd = opts.initrd;
  if (initrd && initrd.byteLength > 0) {
    const kernelMax = version >= 0x203 ? hdr.getUint32(HDR.INITRD_ADDR_MAX, true) : LINUX_BOOT.defaultInitrdMax;
    // `top` is exclusive: the first byte the initrd must not touch.
    const top = Math.min(kernelMax + 1, lowRamBytes - LINUX_BOOT.firmwareReserve);
    initrdAddr = Math.floor((top - initrd.byteLength) / 4096) * 4096;
    if (initrdAddr < LINUX_BOOT.kernelAddr + kernelSize) {
      throw new FwCfgKernelError(
        `initrd (${initrd.byteLength} bytes) does not fit between the kernel and 0x${top.toString(16)}`,
      );
    }
    sv.setUint32(HDR.RAMDISK_IMAGE, initrdAddr, true);
    sv.setUint32(HDR.RAMDISK_SIZE, initrd.byteLength, true);
  }

  const items = new Map<number, Uint8Array>([
    [FwCfgKey.SETUP_ADDR, u32(LINUX_BOOT.setupAddr)],
    [FwCfgKey.SETUP_SIZE, u32(setupSize)],
    [FwCfgKey.SETUP_DATA, setup],
    [FwCfgKey.KERNEL_ADDR, u32(LINUX_BOOT.kernelAddr)],
    [FwCfgKey.KERNEL_SIZE, u32(kernelSize)],
    [FwCfgKey.KERNEL_DATA, img.slice(setupSize)],
    [FwCfgKey.CMDLINE_ADDR, u32(LINUX_BOOT.cmdlineAddr)],
    [FwCfgKey.CMDLINE_SIZE, u32(cmdlineData.byteLength)],
    [FwCfgKey.CMDLINE_DATA, cmdlineData],
    [FwCfgKey.INITRD_ADDR, u32(initrdAddr)],
    [FwCfgKey.INITRD_SIZE, u32(initrd?.byteLength ?? 0)],
  ]);
  if (initrd && initrd.byteLength > 0) items.set(FwCfgKey.INITRD_DATA, initrd.slice());
  return items;
}
