// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// SMBIOS 2.7 tables for QEMU-style firmware, as two fw_cfg files:
//
//   etc/smbios/smbios-tables   the structure table
//   etc/smbios/smbios-anchor   the 31-byte "_SM_"/"_DMI_" entry point
//
// SeaBIOS takes both as they are when present (its own type 0 is added only
// if the table lacks one): it copies the table into memory, writes the
// table's address into the entry point and recomputes both checksums. OVMF
// installs the structures through its SMBIOS protocol. So the anchor's
// structure table address is left 0 here and its checksums are correct for
// that value.
//
// Every structure is a formatted area (type, length, handle, fields) and a
// string set: each string NUL-terminated, the set ended by one more NUL (two
// NULs when there are no strings). Fields refer to strings by 1-based index;
// 0 means "no string", so empty strings are never emitted.
//
// Structure layouts are from DMTF DSP0134 (SMBIOS 2.7); handles and values
// follow the reference's account of Propolis (§7.4).
//
// Pure byte generation.

import assert from 'node:assert/strict';
import { ByteWriter, fixChecksum } from '../bytes.js';
import { FirmwareConfigError } from '../errors.js';

export const SMBIOS_TABLES_FILE = 'etc/smbios/smbios-tables';
export const SMBIOS_ANCHOR_FILE = 'etc/smbios/smbios-anchor';

export const SMBIOS_MAJOR = 2;
export const SMBIOS_MINOR = 7;

/** Release dates Propolis reports (server and standalone). */
export const RELEASE_DATE_SERVER = 'The Aftermath 30, 3185 YOLD';
export const RELEASE_DATE_STANDALONE = 'Bureaucracy 41, 3186 YOLD';
export const BOOTROM_VERSION_SERVER = 'v0.8';
export const BOOTROM_VERSION_STANDALONE = 'v0.0.1-alpha 1';

/** Structure handles (reference §7.4; chassis and mapped-address handles are ours). */
export const Handle = {
  Bios: 0x0000,
  System: 0x0100,
  Chassis: 0x0200,
  Processor: 0x0300,
  MemoryArray: 0x1600,
  MemoryDevice: 0x1700,
  /** Plus the range index. */
  MemoryArrayMappedAddress: 0x1300,
  BootInfo: 0x3200,
  End: 0x7f00,
} as const;

/** Formatted-area lengths of the SMBIOS 2.7 structures we emit. */
export const Length = {
  Bios: 0x18,
  System: 0x1b,
  Chassis: 0x16,
  Processor: 0x2a,
  MemoryArray: 0x17,
  MemoryDevice: 0x22,
  MemoryArrayMappedAddress: 0x1f,
  BootInfo: 0x0b,
  End: 0x04,
} as const;

export const ENTRY_POINT_LENGTH = 0x1f;

export interface SmbiosSystem {
  manufacturer?: string;
  productName?: string;
  /** A number is written in decimal, as Propolis does. */
  version?: string | number;
  serialNumber?: string;
  skuNumber?: string;
  family?: string;
  /** The instance id, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
  uuid: string;
}

export interface SmbiosCpu {
  /** CPUID leaf 0 vendor string ("GenuineIntel", "AuthenticAMD", ...). */
  vendor: string;
  /** Display family (base family plus extended family). */
  family: number;
  model: number;
  stepping: number;
  /** CPUID 0x8000_0002..4 brand string. */
  brand: string;
  cpuidEax1: number;
  cpuidEdx1: number;
}

export interface SmbiosInput {
  /** Defaults to BOOTROM_VERSION_SERVER. */
  bootromVersion?: string;
  /** Defaults to RELEASE_DATE_SERVER. */
  releaseDate?: string;
  /** Bootrom size in bytes; a multiple of 64 KiB, at least 64 KiB. */
  romSize: number;
  system: SmbiosSystem;
  cpu: SmbiosCpu;
  cpus: number;
  memory: { lowmem: number; highmem: number };
}

export interface SmbiosBuild {
  tables: Uint8Array;
  anchor: Uint8Array;
  files: { name: string; bytes: Uint8Array }[];
}

const KiB = 1024;
const MiB = 1024 * 1024;
const FOUR_GIB = 4 * 1024 * MiB;

const fail = (msg: string): never => {
  throw new FirmwareConfigError(`SMBIOS: ${msg}`);
};

/** One structure: the formatted area written field by field, then its strings. */
class Structure {
  private readonly w = new ByteWriter();
  private readonly strings: Uint8Array[] = [];

  constructor(
    type: number,
    private readonly length: number,
    handle: number,
  ) {
    this.w.u8(type).u8(length).u16(handle);
  }

  /** A string field: its index in the string set, or 0 when absent or empty. */
  str(s: string | undefined, what: string): this {
    if (s === undefined || s === '') return this.u8(0);
    if (s.includes('\0')) fail(`${what} contains a NUL character`);
    this.strings.push(new TextEncoder().encode(s));
    assert(this.strings.length <= 255, 'too many strings in one structure');
    return this.u8(this.strings.length);
  }

  u8(v: number): this {
    this.w.u8(v);
    return this;
  }
  u16(v: number): this {
    this.w.u16(v);
    return this;
  }
  u32(v: number): this {
    this.w.u32(v);
    return this;
  }
  u64(v: number | bigint): this {
    this.w.u64(v);
    return this;
  }
  zeros(n: number): this {
    this.w.zeros(n);
    return this;
  }

  finish(): Uint8Array {
    assert.equal(this.w.length, this.length, 'formatted area length differs from the declared length');
    if (this.strings.length === 0) return this.w.u8(0).u8(0).finish();
    for (const s of this.strings) this.w.bytes(s).u8(0);
    return this.w.u8(0).finish();
  }
}

/**
 * SMBIOS UUID bytes (2.6+): the first three fields little-endian, the last
 * two as written.
 */
export function uuidBytes(uuid: string): Uint8Array {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(uuid);
  if (!m) return fail(`instance id ${JSON.stringify(uuid)} is not a UUID`);
  const hex = (s: string): number[] => s.match(/../g)!.map((b) => parseInt(b, 16));
  return Uint8Array.from([
    ...hex(m[1]!).reverse(),
    ...hex(m[2]!).reverse(),
    ...hex(m[3]!).reverse(),
    ...hex(m[4]!),
    ...hex(m[5]!),
  ]);
}

/** Type 0: BIOS information. */
function bios(input: SmbiosInput): Uint8Array {
  const { romSize } = input;
  if (!Number.isSafeInteger(romSize) || romSize < 64 * KiB || romSize % (64 * KiB) !== 0)
    fail(`bootrom size ${romSize} is not a positive multiple of 64 KiB`);
  // (n + 1) × 64 KiB; 0xFF would mean "see the 3.1 extended size field".
  const romSizeField = Math.min(romSize / (64 * KiB) - 1, 0xfe);
  return new Structure(0, Length.Bios, Handle.Bios)
    .str('Oxide', 'BIOS vendor')
    .str(input.bootromVersion ?? BOOTROM_VERSION_SERVER, 'bootrom version')
    .u16(0) // starting address segment: not applicable to UEFI firmware
    .str(input.releaseDate ?? RELEASE_DATE_SERVER, 'release date')
    .u8(romSizeField)
    .u64(1n << 3n) // characteristics: "BIOS characteristics are not supported"
    .u8(0x01) // extension byte 1: ACPI supported
    .u8(0x08 | 0x10) // extension byte 2: UEFI supported, describes a virtual machine
    .u8(0xff) // system BIOS major release: not provided
    .u8(0xff) // minor
    .u8(0xff) // embedded controller firmware major release: none
    .u8(0xff) // minor
    .finish();
}

/** Type 1: system information. */
function system(s: SmbiosSystem): Uint8Array {
  const uuid = uuidBytes(s.uuid);
  const st = new Structure(1, Length.System, Handle.System)
    .str(s.manufacturer ?? 'Oxide', 'system manufacturer')
    .str(s.productName ?? 'OxVM', 'product name')
    .str(s.version === undefined ? undefined : String(s.version), 'system version')
    .str(s.serialNumber ?? s.uuid, 'serial number');
  for (const b of uuid) st.u8(b);
  return st
    .u8(0x06) // wake-up type: power switch
    .str(s.skuNumber, 'SKU number')
    .str(s.family, 'family')
    .finish();
}

/** Type 3: system enclosure. */
function chassis(s: SmbiosSystem): Uint8Array {
  const SAFE = 0x03;
  return new Structure(3, Length.Chassis, Handle.Chassis)
    .str(s.manufacturer ?? 'Oxide', 'chassis manufacturer')
    .u8(0x01) // type: other; no chassis lock
    .str(undefined, 'version')
    .str(undefined, 'serial')
    .str(undefined, 'asset tag')
    .u8(SAFE) // boot-up state
    .u8(SAFE) // power supply state
    .u8(SAFE) // thermal state
    .u8(0x02) // security status: unknown
    .u32(0) // OEM-defined
    .u8(0) // height: unspecified
    .u8(0) // number of power cords: unspecified
    .u8(0) // contained element count
    .u8(0) // contained element record length
    .str(undefined, 'SKU number')
    .finish();
}

const PROCESSOR_FAMILY_UNKNOWN = 0x02;
/** "AMD Zen Processor Family" (SMBIOS 3.x), for family 0x17 and later. */
const PROCESSOR_FAMILY_AMD_ZEN = 0x6b;

function cpuManufacturer(vendor: string): string {
  if (vendor === 'GenuineIntel') return 'Intel';
  if (vendor === 'AuthenticAMD') return 'Advanced Micro Devices, Inc.';
  return vendor;
}

/** Type 4: processor information; one socket holding all vCPUs. */
function processor(cpu: SmbiosCpu, cpus: number): Uint8Array {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 255) fail(`vCPU count ${cpus} does not fit type 4`);
  const family =
    cpu.vendor === 'AuthenticAMD' && cpu.family >= 0x17 ? PROCESSOR_FAMILY_AMD_ZEN : PROCESSOR_FAMILY_UNKNOWN;
  const id = BigInt(cpu.cpuidEax1 >>> 0) | (BigInt(cpu.cpuidEdx1 >>> 0) << 32n);
  return new Structure(4, Length.Processor, Handle.Processor)
    .str(undefined, 'socket designation')
    .u8(0x03) // processor type: central processor
    .u8(family)
    .str(cpuManufacturer(cpu.vendor), 'processor manufacturer')
    .u64(id) // processor ID: CPUID leaf 1 EAX, then EDX
    .str(cpu.brand.trim(), 'processor version')
    .u8(0) // voltage: not given
    .u16(0) // external clock: unknown
    .u16(0) // max speed: unknown
    .u16(0) // current speed: unknown
    .u8(0x41) // status: socket populated, CPU enabled
    .u8(0x01) // upgrade: other
    .u16(0xffff) // L1 cache handle: no cache information
    .u16(0xffff) // L2
    .u16(0xffff) // L3
    .str(undefined, 'serial number')
    .str(undefined, 'asset tag')
    .str(undefined, 'part number')
    .u8(cpus) // core count
    .u8(cpus) // cores enabled
    .u8(cpus) // thread count
    .u16(0x0004) // characteristics: 64-bit capable
    .u16(family) // processor family 2
    .finish();
}

/** Type 16: physical memory array holding all guest RAM. */
function memoryArray(ram: number): Uint8Array {
  const kib = Math.ceil(ram / KiB);
  const extended = kib >= 0x8000_0000; // 2 TiB: the KiB field is full
  return new Structure(16, Length.MemoryArray, Handle.MemoryArray)
    .u8(0x03) // location: system board
    .u8(0x03) // use: system memory
    .u8(0x03) // error correction: none
    .u32(extended ? 0x8000_0000 : kib) // maximum capacity, KiB
    .u16(0xfffe) // memory error information: not provided
    .u16(1) // number of memory devices
    .u64(extended ? ram : 0) // extended maximum capacity, bytes
    .finish();
}

/** Type 17: one memory device of the whole RAM size. */
function memoryDevice(ram: number): Uint8Array {
  // Size: MiB with bit 15 clear, or KiB with bit 15 set; 0x7FFF → extended size in MiB.
  let size: number;
  let extendedSize = 0;
  if (ram % MiB === 0 && ram / MiB < 0x7fff) size = ram / MiB;
  else if (ram % MiB !== 0 && ram / KiB < 0x8000) size = 0x8000 | Math.floor(ram / KiB);
  else {
    size = 0x7fff;
    extendedSize = Math.floor(ram / MiB);
  }
  return new Structure(17, Length.MemoryDevice, Handle.MemoryDevice)
    .u16(Handle.MemoryArray)
    .u16(0xfffe) // memory error information: not provided
    .u16(0xffff) // total width: unknown
    .u16(0xffff) // data width: unknown
    .u16(size)
    .u8(0x02) // form factor: unknown
    .u8(0) // device set: none
    .str('DIMM 0', 'device locator')
    .str(undefined, 'bank locator')
    .u8(0x02) // memory type: unknown
    .u16(0x0004) // type detail: unknown (bit 2)
    .u16(0) // speed: unknown
    .str(undefined, 'manufacturer')
    .str(undefined, 'serial number')
    .str(undefined, 'asset tag')
    .str(undefined, 'part number')
    .u8(0) // attributes: rank unknown
    .u32(extendedSize)
    .u16(0) // configured memory clock speed: unknown
    .finish();
}

/** Type 19: where one RAM range sits in the physical address space. */
function mappedAddress(index: number, start: number, size: number): Uint8Array {
  const startKib = start / KiB;
  const endKib = (start + size) / KiB - 1;
  const extended = endKib >= 0xffff_ffff;
  return new Structure(19, Length.MemoryArrayMappedAddress, Handle.MemoryArrayMappedAddress + index)
    .u32(extended ? 0xffff_ffff : startKib)
    .u32(extended ? 0xffff_ffff : endKib)
    .u16(Handle.MemoryArray)
    .u8(1) // partition width: devices per row
    .u64(extended ? start : 0) // extended starting address, bytes
    .u64(extended ? BigInt(start) + BigInt(size) - 1n : 0) // extended ending address (inclusive)
    .finish();
}

/** Type 32: system boot information. */
function bootInfo(): Uint8Array {
  return new Structure(32, Length.BootInfo, Handle.BootInfo)
    .zeros(6) // reserved
    .u8(0) // boot status: no errors detected
    .finish();
}

function end(): Uint8Array {
  return new Structure(127, Length.End, Handle.End).finish();
}

function entryPoint(tableLength: number, count: number, maxStructure: number): Uint8Array {
  const w = new ByteWriter()
    .ascii('_SM_', 4)
    .u8(0) // checksum
    .u8(ENTRY_POINT_LENGTH)
    .u8(SMBIOS_MAJOR)
    .u8(SMBIOS_MINOR)
    .u16(maxStructure)
    .u8(0) // entry point revision: 2.1 format
    .zeros(5) // formatted area
    .ascii('_DMI_', 5)
    .u8(0) // intermediate checksum
    .u16(tableLength)
    .u32(0) // structure table address: set by the firmware
    .u16(count)
    .u8((SMBIOS_MAJOR << 4) | SMBIOS_MINOR); // BCD revision
  const b = w.finish();
  assert.equal(b.length, ENTRY_POINT_LENGTH);
  // The intermediate checksum covers the "_DMI_" part (offset 0x10 on), the
  // entry point checksum the whole structure.
  fixChecksum(b, 0x15, 0x10, ENTRY_POINT_LENGTH - 0x10);
  fixChecksum(b, 0x04, 0, ENTRY_POINT_LENGTH);
  return b;
}

/** Builds the table and entry point. Throws FirmwareConfigError on unusable input. */
export function buildSmbios(input: SmbiosInput): SmbiosBuild {
  const { lowmem, highmem } = input.memory;
  if (!Number.isSafeInteger(lowmem) || lowmem <= 0 || lowmem > FOUR_GIB || lowmem % KiB !== 0)
    fail(`low memory size ${lowmem} is invalid`);
  if (!Number.isSafeInteger(highmem) || highmem < 0 || highmem % KiB !== 0)
    fail(`high memory size ${highmem} is invalid`);
  const ram = lowmem + highmem;
  const ranges: [number, number][] = [[0, lowmem]];
  if (highmem > 0) ranges.push([FOUR_GIB, highmem]);

  const structures = [
    bios(input),
    system(input.system),
    chassis(input.system),
    processor(input.cpu, input.cpus),
    memoryArray(ram),
    memoryDevice(ram),
    ...ranges.map(([start, size], i) => mappedAddress(i, start, size)),
    bootInfo(),
    end(),
  ];
  const total = structures.reduce((n, s) => n + s.length, 0);
  if (total > 0xffff) fail(`structure table is ${total} bytes; the 2.1 entry point allows 65535`);
  const tables = new Uint8Array(total);
  let at = 0;
  for (const s of structures) {
    tables.set(s, at);
    at += s.length;
  }
  const anchor = entryPoint(total, structures.length, Math.max(...structures.map((s) => s.length)));
  return {
    tables,
    anchor,
    files: [
      { name: SMBIOS_TABLES_FILE, bytes: tables },
      { name: SMBIOS_ANCHOR_FILE, bytes: anchor },
    ],
  };
}
