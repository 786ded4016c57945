// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The configuration-space register model of one PCI function: 256 bytes
// and the spec's per-byte masks. No locks, buses or side effects — the
// function attachment (function.ts) adds those.
//
// An access of 1, 2 or 4 bytes at any offset works byte by byte, as byte
// enables do on the bus: for each byte, read-only bits keep their value,
// writable bits take the written value, and write-1-to-clear bits clear
// where a 1 is written. BAR sizing falls out of the masks: the address bits
// below a BAR's size are read-only zero, so writing all-ones reads back the
// size mask with the type bits. An access that leaves the 256 bytes (or has
// another size) reads all-ones and writes nothing.
//
// Threading: the bytes may be a view of a SharedArrayBuffer; callers hold
// the function's lock around every access.

import { CFG, COMMAND, PCI_CFG_SIZE } from './bits.js';
import type { BarSpec, PciSpec } from './builder.js';

/** True for a valid config access (size 1, 2 or 4 within the 256 bytes). */
export function cfgAccessOk(off: number, size: number): boolean {
  return (size === 1 || size === 2 || size === 4) && Number.isInteger(off) && off >= 0 && off + size <= PCI_CFG_SIZE;
}

export function cfgAllOnes(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
}

export class PciConfigSpace {
  constructor(
    readonly spec: PciSpec,
    /** Current values (256 bytes). */
    readonly bytes: Uint8Array,
    /** Power-on values; the spec's unless the attachment patched them (e.g. the INTx pin). */
    readonly init: Uint8Array = spec.init,
  ) {
    if (bytes.length < PCI_CFG_SIZE || init.length < PCI_CFG_SIZE) throw new RangeError('config space needs 256 bytes');
  }

  reset(): void {
    this.bytes.set(this.init.subarray(0, PCI_CFG_SIZE));
  }

  read(off: number, size: number): number {
    if (!cfgAccessOk(off, size)) return cfgAllOnes(size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (this.bytes[off + i] as number);
    return v;
  }

  write(off: number, size: number, value: number): void {
    if (!cfgAccessOk(off, size)) return;
    const { wmask, w1c } = this.spec;
    for (let i = 0; i < size; i++) {
      const o = off + i;
      const v = Math.floor(value / 2 ** (8 * i)) & 0xff;
      const m = wmask[o] as number;
      let b = ((this.bytes[o] as number) & ~m) | (v & m);
      b &= ~(v & (w1c[o] as number));
      this.bytes[o] = b;
    }
  }

  u8(off: number): number {
    return this.bytes[off] as number;
  }

  u16(off: number): number {
    return this.read(off, 2);
  }

  u32(off: number): number {
    return this.read(off, 4);
  }

  /** Set bits regardless of the write masks (device-side state such as Interrupt Status). */
  setBits16(off: number, bits: number, on: boolean): void {
    const v = on ? this.u16(off) | bits : this.u16(off) & ~bits;
    this.bytes[off] = v & 0xff;
    this.bytes[off + 1] = (v >> 8) & 0xff;
  }

  get command(): number {
    return this.u16(CFG.COMMAND);
  }

  /** Does [off, off+size) touch [regOff, regOff+regLen)? */
  static overlaps(off: number, size: number, regOff: number, regLen: number): boolean {
    return off < regOff + regLen && regOff < off + size;
  }

  /** The BAR register's full value (both dwords of a 64-bit BAR), type bits included. */
  barValue(bar: BarSpec): bigint {
    const off = CFG.BAR0 + 4 * bar.index;
    const lo = BigInt(this.u32(off));
    return bar.kind === 'mmio64' ? lo | (BigInt(this.u32(off + 4)) << 32n) : lo;
  }

  /**
   * Store a BAR value as the guest would have written it (masks applied).
   * Returns false, changing nothing, if the value is not one a guest could
   * have produced (wrong type bits or address bits below the size).
   */
  setBarValue(bar: BarSpec, value: bigint): boolean {
    const off = CFG.BAR0 + 4 * bar.index;
    const width = bar.kind === 'mmio64' ? 8 : 4;
    if (value < 0n || value >= 1n << BigInt(8 * width)) return false;
    for (let i = 0; i < width; i++) {
      const v = Number((value >> BigInt(8 * i)) & 0xffn);
      const m = this.spec.wmask[off + i] as number;
      if ((v & ~m) !== (this.init[off + i] as number)) return false;
    }
    for (let i = 0; i < width; i++) this.bytes[off + i] = Number((value >> BigInt(8 * i)) & 0xffn);
    return true;
  }

  /** The address a BAR decodes at, or undefined when unassigned (0) or out of reach. */
  barBase(bar: BarSpec): number | undefined {
    const off = CFG.BAR0 + 4 * bar.index;
    const lo = this.u32(off);
    let base: number;
    if (bar.kind === 'io') base = (lo & 0xffff_fffc) >>> 0;
    else if (bar.kind === 'mmio32') base = (lo & 0xffff_fff0) >>> 0;
    else base = ((lo & 0xffff_fff0) >>> 0) + this.u32(off + 4) * 2 ** 32;
    if (base === 0) return undefined;
    if (bar.kind === 'io' && base + bar.size > 0x1_0000) return undefined;
    if (base + bar.size > Number.MAX_SAFE_INTEGER) return undefined;
    return base;
  }

  /** Whether the command register lets the function decode this BAR's space. */
  decodes(bar: BarSpec): boolean {
    return (this.command & (bar.kind === 'io' ? COMMAND.IO_SPACE : COMMAND.MEMORY_SPACE)) !== 0;
  }
}
