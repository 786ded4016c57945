// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Doorbells (device.ts): guest writes the kernel turns into eventfd signals
// with KVM_IOEVENTFD, served by the machine's I/O thread (io-worker.ts).
//
// Every doorbell is allocated on the main thread as its device attaches
// there (first): a slot in a shared table and a non-blocking eventfd. The
// allocation list travels to the workers, whose device instances look their
// doorbells up by (owner, index). The slot records the bindings currently
// registered with the kernel, so any thread can change them: a vCPU thread
// after the guest moved a BAR, the main thread at reset or import. Changes
// are made under one table-wide mutex, deassigning what is no longer wanted
// before assigning what is new, so the kernel's registrations and the table
// never disagree.
//
// Threading: the table and its mutex are shared; handlers (`serve`) exist
// only on the I/O thread's instance.

import type { VmFd } from '../../../kvm/src/index.js';
import * as libc from '../../../kvm/src/libc.js';
import type { Doorbell, DoorbellBinding } from '../device.js';
import { SharedMutex } from '../sync/mutex.js';

/** Most doorbells a machine can have (a virtio device has one per queue). */
export const MAX_DOORBELLS = 1024;
/** Bindings per doorbell (a transitional virtio queue has a legacy port and a modern address). */
const MAX_BINDINGS = 2;

// Table layout (Int32 words): lock, then one slot per doorbell.
const LOCK = 0;
const SLOTS = 1;
const B_WORDS = 6; // space (0 io, 1 mmio), addr lo, addr hi, size, has datamatch, datamatch
const SLOT_COUNT = 0;
const SLOT_BINDINGS = 1;
const SLOT_WORDS = SLOT_BINDINGS + MAX_BINDINGS * B_WORDS;

export interface DoorbellAlloc {
  owner: string;
  index: number;
  slot: number;
  fd: number;
}

export class DoorbellAllocError extends Error {
  readonly code = 'DOORBELL_ALLOC';
}

function sameBinding(a: DoorbellBinding, b: DoorbellBinding): boolean {
  return a.space === b.space && a.addr === b.addr && a.size === b.size && a.datamatch === b.datamatch;
}

export class SharedDoorbells {
  private readonly words: Int32Array;
  private readonly lock: SharedMutex;
  private readonly allocs: DoorbellAlloc[];
  private readonly handlers: ((() => void) | undefined)[] = [];

  constructor(
    readonly sab: SharedArrayBuffer,
    private readonly vm: VmFd,
    allocs: DoorbellAlloc[] = [],
    /** Main thread: may allocate. Workers: look up only. */
    private readonly canAllocate = false,
    /** The I/O thread: keeps handlers. */
    private readonly serving = false,
  ) {
    this.words = new Int32Array(sab);
    this.lock = new SharedMutex(this.words.subarray(LOCK, LOCK + 1));
    this.allocs = [...allocs];
  }

  static createBuffer(): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * (SLOTS + MAX_DOORBELLS * SLOT_WORDS));
  }

  get allocations(): DoorbellAlloc[] {
    return [...this.allocs];
  }

  /** Doorbell `index` of `owner`; undefined on a worker when the main thread never allocated it. */
  doorbell(owner: string, index: number): Doorbell | undefined {
    let a = this.allocs.find((x) => x.owner === owner && x.index === index);
    if (!a) {
      if (!this.canAllocate) return undefined;
      if (this.allocs.length >= MAX_DOORBELLS) {
        throw new DoorbellAllocError(`${owner}: more than ${MAX_DOORBELLS} doorbells in one machine`);
      }
      const fd = libc.eventfd(0, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC);
      if (fd < 0) {
        const e = libc.errno();
        throw new DoorbellAllocError(`${owner}: eventfd: ${libc.errnoName(e)} (${libc.strerror(e)})`);
      }
      a = { owner, index, slot: this.allocs.length, fd };
      this.allocs.push(a);
    }
    const { slot } = a;
    return {
      bind: (bindings) => this.bind(slot, bindings),
      serve: (fn) => {
        if (this.serving) this.handlers[slot] = fn;
      },
    };
  }

  /** The handler of a slot (I/O thread). */
  handler(slot: number): (() => void) | undefined {
    return this.handlers[slot];
  }

  /** The bindings registered with the kernel for a slot now. */
  bindings(slot: number): DoorbellBinding[] {
    return this.lock.with(() => this.read(slot));
  }

  private base(slot: number): number {
    return SLOTS + slot * SLOT_WORDS;
  }

  private read(slot: number): DoorbellBinding[] {
    const w = this.words;
    const b0 = this.base(slot);
    const out: DoorbellBinding[] = [];
    const n = w[b0 + SLOT_COUNT] as number;
    for (let i = 0; i < n; i++) {
      const o = b0 + SLOT_BINDINGS + i * B_WORDS;
      const b: DoorbellBinding = {
        space: w[o] === 0 ? 'io' : 'mmio',
        addr: ((w[o + 1] as number) >>> 0) + ((w[o + 2] as number) >>> 0) * 2 ** 32,
        size: w[o + 3] as DoorbellBinding['size'],
      };
      if (w[o + 4] !== 0) b.datamatch = (w[o + 5] as number) >>> 0;
      out.push(b);
    }
    return out;
  }

  private write(slot: number, bindings: DoorbellBinding[]): void {
    const w = this.words;
    const b0 = this.base(slot);
    w[b0 + SLOT_COUNT] = bindings.length;
    bindings.forEach((b, i) => {
      const o = b0 + SLOT_BINDINGS + i * B_WORDS;
      w[o] = b.space === 'io' ? 0 : 1;
      w[o + 1] = (b.addr % 2 ** 32) | 0;
      w[o + 2] = Math.floor(b.addr / 2 ** 32) | 0;
      w[o + 3] = b.size;
      w[o + 4] = b.datamatch === undefined ? 0 : 1;
      w[o + 5] = (b.datamatch ?? 0) | 0;
    });
  }

  private kernel(fd: number, b: DoorbellBinding, deassign: boolean): boolean {
    try {
      this.vm.ioeventfd(fd, BigInt(b.addr), b.size, {
        pio: b.space === 'io',
        ...(b.datamatch === undefined ? {} : { datamatch: BigInt(b.datamatch) }),
        deassign,
      });
      return true;
    } catch {
      // EEXIST: the guest placed two doorbells at one address; those writes exit instead.
      return false;
    }
  }

  private fdOf(slot: number): number {
    const a = this.allocs[slot];
    if (!a || a.slot !== slot) throw new Error(`doorbell slot ${slot} is not allocated`);
    return a.fd;
  }

  private bind(slot: number, wanted: readonly DoorbellBinding[]): number {
    const fd = this.fdOf(slot);
    return this.lock.with(() => {
      const now = this.read(slot);
      const want = wanted.slice(0, MAX_BINDINGS);
      if (now.length === want.length && now.every((b, i) => sameBinding(b, want[i] as DoorbellBinding))) {
        return now.length;
      }
      for (const b of now) if (!want.some((x) => sameBinding(x, b))) this.kernel(fd, b, true);
      const kept: DoorbellBinding[] = [];
      for (const b of want) {
        if (now.some((x) => sameBinding(x, b)) || this.kernel(fd, b, false)) kept.push({ ...b });
      }
      this.write(slot, kept);
      return kept.length;
    });
  }

  /** Unbind everything and close the eventfds (main thread, at destroy, after the I/O thread exited). */
  close(): void {
    for (const a of this.allocs) {
      this.bind(a.slot, []);
      libc.close(a.fd);
    }
    this.allocs.length = 0;
  }
}
