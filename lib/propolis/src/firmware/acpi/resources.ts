// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// ACPI resource descriptors (ACPI 6.x section 6.4, "Resource Data Types for
// ACPI"): the byte records inside _CRS/_PRS buffers. `resourceTemplate()`
// wraps descriptors in an AML Buffer and appends the End Tag, as ASL's
// ResourceTemplate() does.
//
// Small descriptors start with one tag byte: bit 7 clear, item name in bits
// 3-6, length in bits 0-2. Large ones start with a byte with bit 7 set and
// the item name in bits 0-6, then a 16-bit length of what follows.
//
// Pure byte generation.

import assert from 'node:assert/strict';
import { ByteWriter, concat } from '../bytes.js';
import { buffer, type Aml } from './aml.js';

/** Small item names (bits 3-6 of the tag). */
const SmallItem = { Irq: 0x04, Io: 0x08, FixedIo: 0x09, EndTag: 0x0f } as const;
/** Large item names (bits 0-6 of the tag). */
const LargeItem = {
  Memory32Fixed: 0x06,
  DWordAddressSpace: 0x07,
  WordAddressSpace: 0x08,
  ExtendedIrq: 0x09,
  QWordAddressSpace: 0x0a,
} as const;

const smallTag = (item: number, len: number): number => (item << 3) | len;
const largeTag = (item: number): number => 0x80 | item;

function irqMask(irqs: readonly number[]): number {
  let mask = 0;
  for (const i of irqs) {
    assert(Number.isInteger(i) && i >= 0 && i <= 15, `ISA IRQ out of range: ${i}`);
    mask |= 1 << i;
  }
  return mask;
}

/** IRQNoFlags(){irqs}: edge-triggered, active-high, exclusive ISA interrupts. */
export function irqNoFlags(...irqs: number[]): Aml {
  return new ByteWriter().u8(smallTag(SmallItem.Irq, 2)).u16(irqMask(irqs)).finish();
}

export interface InterruptMode {
  /** Edge-triggered (_HE); level-triggered otherwise. */
  edge: boolean;
  /** Active-low (_LL); active-high otherwise. */
  activeLow: boolean;
  /** Shared (_SHR); exclusive otherwise. */
  shared: boolean;
}

/** IRQ(mode){irqs}: the 3-byte form with an information byte. */
export function irq(mode: InterruptMode, ...irqs: number[]): Aml {
  const info = (mode.edge ? 0x01 : 0) | (mode.activeLow ? 0x08 : 0) | (mode.shared ? 0x10 : 0);
  return new ByteWriter().u8(smallTag(SmallItem.Irq, 3)).u16(irqMask(irqs)).u8(info).finish();
}

/**
 * IO(Decode16, min, max, align, length). With min = max the port range is
 * fixed; `align` 1 is then the usual value.
 */
export function io(min: number, max: number, align: number, length: number): Aml {
  return new ByteWriter()
    .u8(smallTag(SmallItem.Io, 7))
    .u8(0x01) // 16-bit address decode
    .u16(min)
    .u16(max)
    .u8(align)
    .u8(length)
    .finish();
}

/** FixedIO(base, length): a 10-bit decoded ISA range. */
export function fixedIo(base: number, length: number): Aml {
  assert(base <= 0x3ff, 'FixedIO decodes 10 address bits');
  return new ByteWriter().u8(smallTag(SmallItem.FixedIo, 3)).u16(base).u8(length).finish();
}

/** End Tag; checksum 0 means "treat the template as correctly summed". */
export function endTag(): Aml {
  return Uint8Array.of(smallTag(SmallItem.EndTag, 1), 0x00);
}

/** Memory32Fixed(ReadWrite|ReadOnly, base, length). */
export function memory32Fixed(readWrite: boolean, base: number, length: number): Aml {
  return new ByteWriter()
    .u8(largeTag(LargeItem.Memory32Fixed))
    .u16(9)
    .u8(readWrite ? 1 : 0)
    .u32(base)
    .u32(length)
    .finish();
}

/** Interrupt(ResourceConsumer, mode){gsis}: the extended interrupt descriptor. */
export function interrupt(mode: InterruptMode, ...gsis: number[]): Aml {
  assert(gsis.length >= 1 && gsis.length <= 255, 'Interrupt() needs 1..255 interrupts');
  const flags =
    0x01 | // consumer
    (mode.edge ? 0x02 : 0) |
    (mode.activeLow ? 0x04 : 0) |
    (mode.shared ? 0x08 : 0);
  const w = new ByteWriter()
    .u8(largeTag(LargeItem.ExtendedIrq))
    .u16(2 + 4 * gsis.length)
    .u8(flags)
    .u8(gsis.length);
  for (const g of gsis) w.u32(g);
  return w.finish();
}

/** Address space resource types (byte 3 of Word/DWord/QWord descriptors). */
const ResourceType = { Memory: 0, Io: 1, BusNumber: 2 } as const;

/**
 * Options common to Word/DWord/QWord address space descriptors. Defaults fit
 * a host bridge window: a producer with fixed minimum and maximum and
 * positive decode, no granularity or translation.
 */
export interface AddressSpaceOptions {
  consumer?: boolean;
  subtractiveDecode?: boolean;
  minFixed?: boolean;
  maxFixed?: boolean;
}

function generalFlags(o: AddressSpaceOptions): number {
  return (
    (o.consumer ? 0x01 : 0) |
    (o.subtractiveDecode ? 0x02 : 0) |
    ((o.minFixed ?? true) ? 0x04 : 0) |
    ((o.maxFixed ?? true) ? 0x08 : 0)
  );
}

function addressSpace(
  width: 2 | 4 | 8,
  type: number,
  typeFlags: number,
  min: bigint,
  max: bigint,
  o: AddressSpaceOptions,
): Aml {
  const limit = (1n << BigInt(8 * width)) - 1n;
  assert(min >= 0n && min <= max && max <= limit, `address range ${min}..${max} does not fit ${width} bytes`);
  const item =
    width === 2 ? LargeItem.WordAddressSpace : width === 4 ? LargeItem.DWordAddressSpace : LargeItem.QWordAddressSpace;
  const w = new ByteWriter()
    .u8(largeTag(item))
    .u16(3 + 5 * width)
    .u8(type)
    .u8(generalFlags(o))
    .u8(typeFlags);
  // granularity, minimum, maximum, translation offset, length
  for (const v of [0n, min, max, 0n, max - min + 1n]) {
    if (width === 2) w.u16(Number(v));
    else if (width === 4) w.u32(Number(v));
    else w.u64(v);
  }
  return w.finish();
}

/** WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len). */
export function wordBusNumber(min: number, max: number, o: AddressSpaceOptions = {}): Aml {
  return addressSpace(2, ResourceType.BusNumber, 0, BigInt(min), BigInt(max), o);
}

/** I/O range decode (_RNG): which ISA aliases the window covers. */
export const IoRange = { NonIsaOnly: 1, IsaOnly: 2, EntireRange: 3 } as const;

/** WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len). */
export function wordIo(min: number, max: number, o: AddressSpaceOptions & { range?: number } = {}): Aml {
  return addressSpace(2, ResourceType.Io, o.range ?? IoRange.EntireRange, BigInt(min), BigInt(max), o);
}

/** Memory attribute (_MEM) of a memory address space descriptor. */
export const MemCaching = { NonCacheable: 0, Cacheable: 1, WriteCombining: 2, Prefetchable: 3 } as const;

export interface MemoryOptions extends AddressSpaceOptions {
  caching?: number;
  readOnly?: boolean;
}

function memFlags(o: MemoryOptions): number {
  return (o.readOnly ? 0 : 0x01) | ((o.caching ?? MemCaching.Cacheable) << 1);
}

/** DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, 0, min, max, 0, len). */
export function dwordMemory(min: number, max: number, o: MemoryOptions = {}): Aml {
  return addressSpace(4, ResourceType.Memory, memFlags(o), BigInt(min), BigInt(max), o);
}

/** QWordMemory(...): as dwordMemory with 64-bit fields. */
export function qwordMemory(min: bigint, max: bigint, o: MemoryOptions = {}): Aml {
  return addressSpace(8, ResourceType.Memory, memFlags(o), min, max, o);
}

/** ResourceTemplate(){ descriptors }: a Buffer ending in an End Tag. */
export function resourceTemplate(...descriptors: Aml[]): Aml {
  return buffer(concat([...descriptors, endTag()]));
}
