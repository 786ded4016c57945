// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PC/AT layout of the CMOS RAM behind the clock registers: the bytes a
// BIOS reads at power-on (equipment, drive types, memory sizes, checksum)
// and the extensions QEMU's firmware interface defined, which SeaBIOS reads
// when fw_cfg does not tell it (memory above 16 MiB and above 4 GiB, the
// vCPU count). Sizes follow the reference's QEMU-style rules (§7, RTC row).
//
// Threading: pure functions.

/** CMOS RAM indexes (the clock registers are in mc146818.ts). */
export const CMOS = {
  DIAGNOSTIC_STATUS: 0x0e,
  SHUTDOWN_STATUS: 0x0f,
  DISKETTE_TYPES: 0x10,
  HARD_DISK_TYPES: 0x12,
  EQUIPMENT: 0x14,
  BASE_MEM_LO: 0x15,
  BASE_MEM_HI: 0x16,
  EXT_MEM_LO: 0x17,
  EXT_MEM_HI: 0x18,
  HARD_DISK_0_EXT: 0x19,
  HARD_DISK_1_EXT: 0x1a,
  CHECKSUM_HI: 0x2e,
  CHECKSUM_LO: 0x2f,
  /** Extended memory again (as counted by POST). */
  EXT_MEM2_LO: 0x30,
  EXT_MEM2_HI: 0x31,
  CENTURY: 0x32,
  /** 64 KiB units between 16 MiB and the top of low memory. */
  MEM_ABOVE_16M_LO: 0x34,
  MEM_ABOVE_16M_HI: 0x35,
  /** 64 KiB units above 4 GiB, three bytes little-endian. */
  MEM_ABOVE_4G_0: 0x5b,
  MEM_ABOVE_4G_1: 0x5c,
  MEM_ABOVE_4G_2: 0x5d,
  /** Number of vCPUs minus one. */
  CPUS_MINUS_1: 0x5f,
} as const;

/** The checksum covers these bytes (inclusive), as on the IBM AT. */
export const CHECKSUM_FIRST = 0x10;
export const CHECKSUM_LAST = 0x2d;

/** Equipment byte bits (IBM AT, with the PS/2 pointing-device bit). */
export const EQUIPMENT = { DISKETTE: 0x01, MATH_COPROCESSOR: 0x02, POINTING_DEVICE: 0x04 } as const;

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const BASE_MEM_KIB = 640;

export class CmosConfigError extends Error {
  readonly code = 'CMOS_CONFIG';
}

export interface PcCmosConfig {
  /** RAM from address 0 up (at most 4 GiB; 3 GiB on this machine's layout). */
  lowmem: number;
  /** RAM from 4 GiB up. */
  highmem: number;
  cpus: number;
  /** More RAM bytes to set (e.g. firmware boot-order bytes), applied last. */
  extra?: readonly { index: number; value: number }[];
}

/** The RAM bytes of a PC with this configuration, as (index, value) pairs. */
export function pcCmosBytes(cfg: PcCmosConfig): [number, number][] {
  const { lowmem, highmem, cpus } = cfg;
  if (!Number.isSafeInteger(lowmem) || lowmem < MIB || lowmem > 4 * GIB) {
    throw new CmosConfigError(`CMOS: low memory ${lowmem} must be a whole number of bytes from 1 MiB to 4 GiB`);
  }
  if (!Number.isSafeInteger(highmem) || highmem < 0) {
    throw new CmosConfigError(`CMOS: high memory ${highmem} must be a whole, non-negative number of bytes`);
  }
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 256) {
    throw new CmosConfigError(`CMOS: ${cpus} vCPUs is outside 1..256`);
  }
  const out: [number, number][] = [];
  const u16 = (lo: number, v: number): void => {
    out.push([lo, v & 0xff], [lo + 1, (v >> 8) & 0xff]);
  };
  out.push([CMOS.DIAGNOSTIC_STATUS, 0], [CMOS.SHUTDOWN_STATUS, 0]);
  out.push([CMOS.DISKETTE_TYPES, 0], [CMOS.HARD_DISK_TYPES, 0]);
  out.push([CMOS.HARD_DISK_0_EXT, 0], [CMOS.HARD_DISK_1_EXT, 0]);
  // No diskette, so the diskette-count bits stay 0; bits 5:4 = 00 is a
  // display adapter with its own BIOS (VGA or none).
  out.push([CMOS.EQUIPMENT, EQUIPMENT.MATH_COPROCESSOR | EQUIPMENT.POINTING_DEVICE]);
  u16(CMOS.BASE_MEM_LO, Math.min(BASE_MEM_KIB, Math.floor(lowmem / KIB)));
  const extKib = Math.min(0xffff, Math.floor((lowmem - MIB) / KIB));
  u16(CMOS.EXT_MEM_LO, extKib);
  u16(CMOS.EXT_MEM2_LO, extKib);
  const above16M = lowmem > 16 * MIB ? Math.min(0xffff, Math.floor((lowmem - 16 * MIB) / (64 * KIB))) : 0;
  u16(CMOS.MEM_ABOVE_16M_LO, above16M);
  const above4G = Math.min(0xff_ffff, Math.floor(highmem / (64 * KIB)));
  out.push(
    [CMOS.MEM_ABOVE_4G_0, above4G & 0xff],
    [CMOS.MEM_ABOVE_4G_1, (above4G >> 8) & 0xff],
    [CMOS.MEM_ABOVE_4G_2, (above4G >> 16) & 0xff],
  );
  out.push([CMOS.CPUS_MINUS_1, (cpus - 1) & 0xff]);
  for (const { index, value } of cfg.extra ?? []) {
    if (!Number.isInteger(index) || index < CMOS.DIAGNOSTIC_STATUS || index > 0x7f || index === CMOS.CENTURY) {
      throw new CmosConfigError(`CMOS: index ${index} is not a RAM byte (0x0e..0x7f, not the century)`);
    }
    if (!Number.isInteger(value) || value < 0 || value > 0xff) {
      throw new CmosConfigError(`CMOS: value ${value} at index ${index} is not a byte`);
    }
    out.push([index, value]);
  }
  return out;
}

/** The AT checksum: the 16-bit sum of bytes 0x10..0x2D, stored big-endian at 0x2E/0x2F. */
export function cmosChecksum(read: (index: number) => number): number {
  let sum = 0;
  for (let i = CHECKSUM_FIRST; i <= CHECKSUM_LAST; i++) sum += read(i);
  return sum & 0xffff;
}
