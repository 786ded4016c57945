// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Interrupt lines shared by several sources and several threads.
//
// A platform IRQ line (a GSI of the in-kernel IOAPIC; GSIs 0–15 also reach
// the PIC) is the wired-OR of its sources: two UARTs on IRQ 4, PCI INTx pins
// routed to the same PIRQ. Each source owns one bit of the line's mask in
// shared memory; the kernel line is driven to (mask != 0). Updating the mask
// and issuing KVM_IRQ_LINE happen under one machine-wide mutex, so two
// threads changing the same line cannot leave the kernel at a stale level.
//
// Source bits are allocated on the main thread as devices attach there
// (first), and the table travels to the vCPU workers, which attach the same
// devices in the same order and look their bits up by (gsi, owner).

import type { IrqLine } from '../device.js';
import { SharedMutex } from '../sync/mutex.js';

export const IRQ_GSIS = 24;
const MASKS = 1;
const LEVELS = MASKS + IRQ_GSIS;
const WORDS = LEVELS + IRQ_GSIS;

export interface IrqSourceAlloc {
  gsi: number;
  owner: string;
  bit: number;
}

export class IrqAllocError extends Error {
  readonly code = 'IRQ_ALLOC';
}

export class SharedIrqLines {
  private readonly words: Int32Array;
  private readonly lock: SharedMutex;
  private readonly allocs: IrqSourceAlloc[];

  constructor(
    readonly sab: SharedArrayBuffer,
    /** Drives the kernel's line; called with the mutex held. */
    private readonly drive: (gsi: number, level: boolean) => void,
    allocs: IrqSourceAlloc[] = [],
    /** Main thread: may allocate new sources. Workers: look up only. */
    private readonly canAllocate = true,
  ) {
    this.words = new Int32Array(sab);
    this.lock = new SharedMutex(this.words.subarray(0, 1));
    this.allocs = [...allocs];
  }

  static createBuffer(): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * WORDS);
  }

  get allocations(): IrqSourceAlloc[] {
    return [...this.allocs];
  }

  /** A source on `gsi` owned by `owner` (one per owner and line). */
  source(gsi: number, owner: string): IrqLine {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi >= IRQ_GSIS) {
      throw new IrqAllocError(`${owner}: IRQ ${gsi} is not a line of this platform (0..${IRQ_GSIS - 1})`);
    }
    let a = this.allocs.find((x) => x.gsi === gsi && x.owner === owner);
    if (!a) {
      if (!this.canAllocate) {
        throw new IrqAllocError(`${owner}: IRQ ${gsi} source was not allocated on the main thread`);
      }
      const used = this.allocs.filter((x) => x.gsi === gsi).length;
      if (used >= 31) throw new IrqAllocError(`IRQ ${gsi}: more than 31 sources`);
      a = { gsi, owner, bit: used };
      this.allocs.push(a);
    }
    const bit = 1 << a.bit;
    const update = (level: boolean): void => this.update(gsi, bit, level);
    return {
      gsi,
      set: update,
      pulse(): void {
        update(true);
        update(false);
      },
    };
  }

  /** Current wired-OR level of a line (for tests and state export). */
  level(gsi: number): boolean {
    return Atomics.load(this.words, MASKS + gsi) !== 0;
  }

  private update(gsi: number, bit: number, level: boolean): void {
    this.lock.lock();
    try {
      const w = this.words;
      const mask = level ? (w[MASKS + gsi] as number) | bit : (w[MASKS + gsi] as number) & ~bit;
      w[MASKS + gsi] = mask;
      const want = mask !== 0 ? 1 : 0;
      // An already-high line stays as it is: level sources need no new
      // edge, and edge sources use pulse(), which passes through low.
      if (w[LEVELS + gsi] !== want) {
        w[LEVELS + gsi] = want;
        this.drive(gsi, want === 1);
      }
    } finally {
      this.lock.unlock();
    }
  }

  /** Drop every source (machine reset): lines go low. */
  resetAll(): void {
    this.lock.with(() => {
      for (let g = 0; g < IRQ_GSIS; g++) {
        this.words[MASKS + g] = 0;
        if (this.words[LEVELS + g] !== 0) {
          this.words[LEVELS + g] = 0;
          this.drive(g, false);
        }
      }
    });
  }
}
