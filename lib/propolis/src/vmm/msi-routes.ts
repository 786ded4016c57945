// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Message-signalled interrupts through KVM_IRQFD.
//
// A device signals an MSI as the guest programmed it: an (address, data)
// pair. The first time a pair is signalled it gets a GSI with an MSI
// routing entry and an eventfd attached to that GSI (KVM_IRQFD); from then
// on signalling it is one eventfd write, from any thread, and the kernel
// injects the interrupt. The table is keyed by the message itself, so it
// needs no invalidation when the guest reprograms a vector: a new message
// simply gets a new entry. It is bounded; once full (a guest that keeps
// inventing messages) further messages go through KVM_SIGNAL_MSI, which
// needs no table. A machine reset empties it.
//
// KVM_SET_GSI_ROUTING replaces the whole table, so the in-kernel irqchip's
// default routes (GSI 0–15 to the PIC and IOAPIC, 16–23 to the IOAPIC) are
// restated with the MSI entries every time.
//
// Threading: the table is shared; lookups read it without the lock (an entry
// is published by storing the count after its fields), additions and the
// reset take the machine-wide mutex.

import {
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
  type GsiRoute,
  type VmFd,
} from '../../../kvm/src/index.js';
import * as libc from '../../../kvm/src/libc.js';
import { SharedMutex } from '../sync/mutex.js';

/** MSI messages with their own irqfd; more go through KVM_SIGNAL_MSI. */
export const MSI_ROUTES = 256;
/** GSIs of MSI routes start above the IOAPIC's pins. */
export const MSI_GSI_BASE = 24;

const LOCK = 0;
const COUNT = 1;
const ENTRIES = 2;
const E_WORDS = 4; // address lo, address hi, data, eventfd

/** The routes KVM installs with KVM_CREATE_IRQCHIP, restated. */
export function defaultIrqchipRoutes(): GsiRoute[] {
  const out: GsiRoute[] = [];
  for (let gsi = 0; gsi < 24; gsi++) {
    out.push({ gsi, kind: 'irqchip', irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi });
    if (gsi < 16) {
      out.push({
        gsi,
        kind: 'irqchip',
        irqchip: gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
        pin: gsi % 8,
      });
    }
  }
  return out;
}

export class MsiRoutes {
  private readonly words: Int32Array;
  private readonly lock: SharedMutex;
  /** Messages delivered by KVM_SIGNAL_MSI because the table was full (this thread). */
  overflowed = 0;

  constructor(
    readonly sab: SharedArrayBuffer,
    private readonly vm: VmFd,
  ) {
    this.words = new Int32Array(sab);
    this.lock = new SharedMutex(this.words.subarray(LOCK, LOCK + 1));
  }

  static createBuffer(): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * (ENTRIES + MSI_ROUTES * E_WORDS));
  }

  /** Entries in use. */
  get size(): number {
    return Atomics.load(this.words, COUNT);
  }

  private find(lo: number, hi: number, data: number, n: number): number {
    const w = this.words;
    for (let i = 0, o = ENTRIES; i < n; i++, o += E_WORDS) {
      if (w[o] === lo && w[o + 1] === hi && w[o + 2] === data) return w[o + 3] as number;
    }
    return -1;
  }

  /** Deliver the MSI (address, data). Never throws. */
  signal(address: bigint, data: number): void {
    const lo = Number(address & 0xffff_ffffn) | 0;
    const hi = Number((address >> 32n) & 0xffff_ffffn) | 0;
    const d = data | 0;
    let fd = this.find(lo, hi, d, Atomics.load(this.words, COUNT));
    if (fd < 0) fd = this.add(lo, hi, d);
    if (fd < 0 || !libc.eventfdSignal(fd)) {
      this.overflowed++;
      try {
        this.vm.signalMsi(lo >>> 0, hi >>> 0, d >>> 0);
      } catch {
        // A message no APIC accepts is dropped, as on hardware.
      }
    }
  }

  private routes(n: number): GsiRoute[] {
    const out = defaultIrqchipRoutes();
    const w = this.words;
    for (let i = 0, o = ENTRIES; i < n; i++, o += E_WORDS) {
      out.push({
        gsi: MSI_GSI_BASE + i,
        kind: 'msi',
        addressLo: (w[o] as number) >>> 0,
        addressHi: (w[o + 1] as number) >>> 0,
        data: (w[o + 2] as number) >>> 0,
      });
    }
    return out;
  }

  /** Add a route for the message; its eventfd, or -1 when the table is full or the kernel refused. */
  private add(lo: number, hi: number, data: number): number {
    return this.lock.with(() => {
      const n = Atomics.load(this.words, COUNT);
      const found = this.find(lo, hi, data, n);
      if (found >= 0) return found;
      if (n >= MSI_ROUTES) return -1;
      const fd = libc.eventfd(0, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC);
      if (fd < 0) return -1;
      const o = ENTRIES + n * E_WORDS;
      const w = this.words;
      w[o] = lo;
      w[o + 1] = hi;
      w[o + 2] = data;
      w[o + 3] = fd;
      try {
        this.vm.setGsiRouting(this.routes(n + 1));
        this.vm.irqfd(fd, MSI_GSI_BASE + n);
      } catch {
        libc.close(fd);
        try {
          this.vm.setGsiRouting(this.routes(n));
        } catch {
          // The previous table stays in force.
        }
        return -1;
      }
      Atomics.store(this.words, COUNT, n + 1);
      return fd;
    });
  }

  /** Drop every route (machine reset or destroy, main thread, no device running). */
  clear(): void {
    this.lock.with(() => {
      const n = Atomics.load(this.words, COUNT);
      if (n === 0) return;
      Atomics.store(this.words, COUNT, 0);
      for (let i = 0; i < n; i++) {
        const fd = this.words[ENTRIES + i * E_WORDS + 3] as number;
        try {
          this.vm.irqfd(fd, MSI_GSI_BASE + i, { deassign: true });
        } catch {
          // Already gone with the VM.
        }
        libc.close(fd);
      }
      try {
        this.vm.setGsiRouting(defaultIrqchipRoutes());
      } catch {
        // The VM is being destroyed.
      }
    });
  }
}
