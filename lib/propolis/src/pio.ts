// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Port I/O and MMIO buses: the dispatch of guest accesses to device handlers.
//
// Each vCPU thread has its own bus instances (built from the same device
// descriptors), so dispatch never crosses threads. Port lookup is one typed
// array index; MMIO is a binary search over non-overlapping ranges.
// Unclaimed reads return all-ones and unclaimed writes are dropped, as on a
// PC; both are counted.

export type AccessSize = 1 | 2 | 4 | 8;

export interface PioHandler {
  /** `port` is absolute; `size` 1, 2 or 4. Returns the value in the low `size` bytes. */
  pioRead(port: number, size: AccessSize): number;
  pioWrite(port: number, size: AccessSize, value: number): void;
}

export interface MmioHandler {
  /** `addr` is absolute; `size` 1, 2, 4 or 8. 8-byte values are bigint. */
  mmioRead(addr: number, size: AccessSize): number | bigint;
  mmioWrite(addr: number, size: AccessSize, value: number | bigint): void;
}

export function allOnes(size: AccessSize): number {
  return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
}

export class BusConflictError extends Error {
  readonly code = 'BUS_CONFLICT';
}

export class PioBus {
  private readonly index = new Uint16Array(0x10000); // port → handler slot (0 = none)
  private readonly handlers: (PioHandler | undefined)[] = [undefined];
  private readonly names: string[] = [''];
  unhandledReads = 0;
  unhandledWrites = 0;

  register(base: number, len: number, handler: PioHandler, name: string): void {
    if (!Number.isInteger(base) || !Number.isInteger(len) || len < 1 || base < 0 || base + len > 0x10000) {
      throw new RangeError(`${name}: port range ${base}+${len} is outside 0..0xffff`);
    }
    for (let p = base; p < base + len; p++) {
      const other = this.index[p] as number;
      if (other !== 0) {
        throw new BusConflictError(`${name}: port 0x${p.toString(16)} already belongs to ${this.names[other]}`);
      }
    }
    const slot = this.handlers.length;
    this.handlers.push(handler);
    this.names.push(name);
    this.index.fill(slot, base, base + len);
  }

  owner(port: number): string | undefined {
    return this.names[this.index[port & 0xffff] as number] || undefined;
  }

  read(port: number, size: AccessSize): number {
    const h = this.handlers[this.index[port & 0xffff] as number];
    if (h === undefined) {
      this.unhandledReads++;
      return allOnes(size);
    }
    return h.pioRead(port, size);
  }

  write(port: number, size: AccessSize, value: number): void {
    const h = this.handlers[this.index[port & 0xffff] as number];
    if (h === undefined) {
      this.unhandledWrites++;
      return;
    }
    h.pioWrite(port, size, value);
  }
}

interface MmioRange {
  base: number;
  end: number; // exclusive
  handler: MmioHandler;
  name: string;
}

export class MmioBus {
  private ranges: MmioRange[] = [];
  unhandledReads = 0;
  unhandledWrites = 0;

  register(base: number, len: number, handler: MmioHandler, name: string): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(len) || len < 1 || base < 0) {
      throw new RangeError(`${name}: bad MMIO range ${base}+${len}`);
    }
    const end = base + len;
    for (const r of this.ranges) {
      if (base < r.end && r.base < end) throw new BusConflictError(`${name}: MMIO range overlaps ${r.name}`);
    }
    this.ranges.push({ base, end, handler, name });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  private find(addr: number): MmioRange | undefined {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid] as MmioRange;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  read(addr: number, size: AccessSize): number | bigint {
    const r = this.find(addr);
    if (r === undefined || addr + size > r.end) {
      this.unhandledReads++;
      return size === 8 ? 0xffff_ffff_ffff_ffffn : allOnes(size);
    }
    return r.handler.mmioRead(addr, size);
  }

  write(addr: number, size: AccessSize, value: number | bigint): void {
    const r = this.find(addr);
    if (r === undefined || addr + size > r.end) {
      this.unhandledWrites++;
      return;
    }
    r.handler.mmioWrite(addr, size, value);
  }
}
