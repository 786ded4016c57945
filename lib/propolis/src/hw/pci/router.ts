// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The BAR router: one per thread, registered on that thread's buses over
// the PCI windows, it sends each guest access to the function whose BAR
// decodes the address now.
//
// BARs are programmed by the guest on one vCPU thread, but any thread may
// take the next access, so nothing is registered or unregistered per BAR.
// Instead every thread's router keeps a sorted map of the decoded BARs and
// checks, per access, each function's shared generation counter (bumped on
// writes to a BAR or the command register); when one moved, it rebuilds the
// map from the shared configuration spaces. Decoding honours the command
// register's I/O Space and Memory Space bits; an unassigned BAR (address 0)
// decodes nothing. Where BARs overlap, the lower base wins (and among equal
// bases, the function attached first). An address no BAR claims reads
// all-ones and drops writes, as on a PC; both are counted.
//
// Threading: per-thread object; reads shared state only through
// PciFunction (which locks). The per-access check allocates nothing.

import type { AccessSize, MmioHandler, PioHandler } from '../../pio.js';
import type { PciFunction } from './function.js';

interface Mapping {
  base: number;
  end: number; // exclusive
  fn: PciFunction;
  bar: number;
}

function allOnes(size: AccessSize): number | bigint {
  return size === 8 ? 0xffff_ffff_ffff_ffffn : size === 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
}

function find(list: Mapping[], addr: number, size: number): Mapping | undefined {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const m = list[mid] as Mapping;
    if (addr < m.base) hi = mid - 1;
    else if (addr >= m.end) lo = mid + 1;
    else return addr + size <= m.end ? m : undefined;
  }
  return undefined;
}

/** Sort by base and drop any range that overlaps one before it. */
function disjoint(list: Mapping[]): Mapping[] {
  list.sort((a, b) => a.base - b.base);
  const out: Mapping[] = [];
  for (const m of list) {
    const last = out[out.length - 1];
    if (last === undefined || m.base >= last.end) out.push(m);
  }
  return out;
}

export class PciBarRouter implements PioHandler, MmioHandler {
  private readonly fns: PciFunction[] = [];
  private readonly seen: number[] = [];
  private io: Mapping[] = [];
  private mmio: Mapping[] = [];
  unclaimedReads = 0;
  unclaimedWrites = 0;
  rebuilds = 0;

  add(fn: PciFunction): void {
    this.fns.push(fn);
    this.seen.push(fn.generation - 1); // stale: the next access builds the map
  }

  private sync(): void {
    const fns = this.fns;
    for (let i = 0; i < fns.length; i++) {
      if ((fns[i] as PciFunction).generation !== this.seen[i]) {
        this.rebuild();
        return;
      }
    }
  }

  private rebuild(): void {
    const io: Mapping[] = [];
    const mmio: Mapping[] = [];
    this.fns.forEach((fn, i) => {
      // Read the generation before the BARs: a write racing with us leaves
      // the counter ahead of what we record, so the next access rebuilds.
      this.seen[i] = fn.generation;
      for (const d of fn.decodedBars()) {
        (d.kind === 'io' ? io : mmio).push({ base: d.base, end: d.base + d.size, fn, bar: d.bar });
      }
    });
    this.io = disjoint(io);
    this.mmio = disjoint(mmio);
    this.rebuilds++;
  }

  /** The current map (after catching up), for tests and diagnostics. */
  mappings(): { space: 'io' | 'mmio'; base: number; size: number; device: string; bar: number }[] {
    this.sync();
    const show = (space: 'io' | 'mmio', l: Mapping[]) =>
      l.map((m) => ({ space, base: m.base, size: m.end - m.base, device: m.fn.name, bar: m.bar }));
    return [...show('io', this.io), ...show('mmio', this.mmio)];
  }

  pioRead(port: number, size: AccessSize): number {
    this.sync();
    const m = find(this.io, port, size);
    if (m === undefined) {
      this.unclaimedReads++;
      return allOnes(size) as number;
    }
    return Number(m.fn.barRead(m.bar, port - m.base, size));
  }

  pioWrite(port: number, size: AccessSize, value: number): void {
    this.sync();
    const m = find(this.io, port, size);
    if (m === undefined) {
      this.unclaimedWrites++;
      return;
    }
    m.fn.barWrite(m.bar, port - m.base, size, value);
  }

  mmioRead(addr: number, size: AccessSize): number | bigint {
    this.sync();
    const m = find(this.mmio, addr, size);
    if (m === undefined) {
      this.unclaimedReads++;
      return allOnes(size);
    }
    return m.fn.barRead(m.bar, addr - m.base, size);
  }

  mmioWrite(addr: number, size: AccessSize, value: number | bigint): void {
    this.sync();
    const m = find(this.mmio, addr, size);
    if (m === undefined) {
      this.unclaimedWrites++;
      return;
    }
    m.fn.barWrite(m.bar, addr - m.base, size, value);
  }
}
