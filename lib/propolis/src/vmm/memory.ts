// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Guest physical memory, seen from device code.
//
// Every access from device code goes through this class: an access lies
// entirely inside one region with the needed protection, or it fails
// (`undefined` / `false`), never touching host memory outside guest RAM.
// Guest-supplied addresses and lengths are untrusted: they are checked as
// numbers (finite, non-negative integers) before any arithmetic.
//
// Threading: a GuestMemory is a set of views over mappings that the Machine
// made once on the main thread; each thread builds its own GuestMemory over
// the same host addresses (see `MemoryLayout`). Views never outlive their
// mapping: the Machine unmaps guest RAM only after every vCPU thread has
// exited and device threads are stopped.

export enum Prot {
  Read = 1,
  Write = 2,
  ReadWrite = 3,
}

export interface MemRegion {
  /** Guest physical base. */
  readonly gpa: number;
  readonly size: number;
  readonly prot: Prot;
  /** Bytes of the region (a view over the host mapping, or a plain buffer in tests). */
  readonly bytes: Uint8Array;
}

function isAddr(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** A bounds-checked window of guest memory, returned by `GuestMemory.slice`. */
export class MemSlice {
  private readonly dv: DataView;

  constructor(
    readonly gpa: number,
    readonly bytes: Uint8Array,
    readonly prot: Prot,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.byteLength;
  }

  private ok(off: number, n: number, need: Prot): boolean {
    return (this.prot & need) === need && isAddr(off) && off + n <= this.bytes.byteLength;
  }

  readU8(off: number): number | undefined {
    return this.ok(off, 1, Prot.Read) ? this.dv.getUint8(off) : undefined;
  }
  readU16(off: number): number | undefined {
    return this.ok(off, 2, Prot.Read) ? this.dv.getUint16(off, true) : undefined;
  }
  readU32(off: number): number | undefined {
    return this.ok(off, 4, Prot.Read) ? this.dv.getUint32(off, true) : undefined;
  }
  readU64(off: number): bigint | undefined {
    return this.ok(off, 8, Prot.Read) ? this.dv.getBigUint64(off, true) : undefined;
  }
  writeU8(off: number, v: number): boolean {
    if (!this.ok(off, 1, Prot.Write)) return false;
    this.dv.setUint8(off, v);
    return true;
  }
  writeU16(off: number, v: number): boolean {
    if (!this.ok(off, 2, Prot.Write)) return false;
    this.dv.setUint16(off, v, true);
    return true;
  }
  writeU32(off: number, v: number): boolean {
    if (!this.ok(off, 4, Prot.Write)) return false;
    this.dv.setUint32(off, v, true);
    return true;
  }
  writeU64(off: number, v: bigint): boolean {
    if (!this.ok(off, 8, Prot.Write)) return false;
    this.dv.setBigUint64(off, BigInt.asUintN(64, v), true);
    return true;
  }
}

export class GuestMemory {
  private readonly regions: MemRegion[];
  private last: MemRegion | undefined;

  constructor(regions: MemRegion[]) {
    this.regions = [...regions].sort((a, b) => a.gpa - b.gpa);
    for (let i = 0; i < this.regions.length; i++) {
      const r = this.regions[i] as MemRegion;
      if (r.bytes.byteLength !== r.size) throw new RangeError(`region at ${hex(r.gpa)}: size does not match its bytes`);
      const next = this.regions[i + 1];
      if (next && r.gpa + r.size > next.gpa)
        throw new RangeError(`regions at ${hex(r.gpa)} and ${hex(next.gpa)} overlap`);
    }
  }

  /** Guest memory over plain buffers, for tests and tools. */
  static fromBuffers(regions: { gpa: number; bytes: Uint8Array; prot?: Prot }[]): GuestMemory {
    return new GuestMemory(
      regions.map((r) => ({ gpa: r.gpa, size: r.bytes.byteLength, prot: r.prot ?? Prot.ReadWrite, bytes: r.bytes })),
    );
  }

  /** The region holding all of [gpa, gpa+len), if any. */
  private find(gpa: number, len: number): MemRegion | undefined {
    if (!isAddr(gpa) || !isAddr(len)) return undefined;
    const l = this.last;
    if (l && gpa >= l.gpa && gpa + len <= l.gpa + l.size) return l;
    let lo = 0;
    let hi = this.regions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.regions[mid] as MemRegion;
      if (gpa < r.gpa) hi = mid - 1;
      else if (gpa >= r.gpa + r.size) lo = mid + 1;
      else {
        if (gpa + len > r.gpa + r.size) return undefined;
        this.last = r;
        return r;
      }
    }
    return undefined;
  }

  /**
   * A window of `len` bytes at `gpa` needing `prot`; undefined when the range
   * is not wholly inside one region with that protection.
   */
  slice(gpa: number, len: number, prot: Prot = Prot.Read): MemSlice | undefined {
    const r = this.find(gpa, len);
    if (!r || (r.prot & prot) !== prot) return undefined;
    const off = gpa - r.gpa;
    return new MemSlice(gpa, r.bytes.subarray(off, off + len), prot);
  }

  private at(gpa: number, len: number, prot: Prot): { r: MemRegion; off: number } | undefined {
    const r = this.find(gpa, len);
    if (!r || (r.prot & prot) !== prot) return undefined;
    return { r, off: gpa - r.gpa };
  }

  readU8(gpa: number): number | undefined {
    const a = this.at(gpa, 1, Prot.Read);
    return a ? (a.r.bytes[a.off] as number) : undefined;
  }

  readU16(gpa: number): number | undefined {
    return this.slice(gpa, 2)?.readU16(0);
  }

  readU32(gpa: number): number | undefined {
    return this.slice(gpa, 4)?.readU32(0);
  }

  readU64(gpa: number): bigint | undefined {
    return this.slice(gpa, 8)?.readU64(0);
  }

  writeU8(gpa: number, v: number): boolean {
    const a = this.at(gpa, 1, Prot.Write);
    if (!a) return false;
    a.r.bytes[a.off] = v;
    return true;
  }

  writeU16(gpa: number, v: number): boolean {
    return this.slice(gpa, 2, Prot.Write)?.writeU16(0, v) ?? false;
  }

  writeU32(gpa: number, v: number): boolean {
    return this.slice(gpa, 4, Prot.Write)?.writeU32(0, v) ?? false;
  }

  writeU64(gpa: number, v: bigint): boolean {
    return this.slice(gpa, 8, Prot.Write)?.writeU64(0, v) ?? false;
  }

  /** Copy guest bytes into `dst`; false (and `dst` untouched) if out of bounds. */
  read(gpa: number, dst: Uint8Array): boolean {
    const a = this.at(gpa, dst.byteLength, Prot.Read);
    if (!a) return false;
    dst.set(a.r.bytes.subarray(a.off, a.off + dst.byteLength));
    return true;
  }

  /** Copy `src` into guest memory; false (and nothing written) if out of bounds. */
  write(gpa: number, src: Uint8Array): boolean {
    const a = this.at(gpa, src.byteLength, Prot.Write);
    if (!a) return false;
    a.r.bytes.set(src, a.off);
    return true;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
