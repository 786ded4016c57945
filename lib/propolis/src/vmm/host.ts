// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The per-thread environment devices attach to (device.ts's DeviceHost):
// buses, guest memory views, IRQ lines, MSIs (through irqfds, msi-routes.ts),
// doorbells (doorbells.ts) and a channel for guest events.
//
// Threading: one ThreadHost per thread; nothing here is shared except the
// kernel objects behind the fds and the guest memory mappings.

import { VmFd } from '../../../kvm/src/index.js';
import * as libc from '../../../kvm/src/libc.js';
import type { DeviceHost, Doorbell, GuestEvents, IrqLine } from '../device.js';
import { SharedDoorbells, type DoorbellAlloc } from './doorbells.js';
import { SharedIrqLines, type IrqSourceAlloc } from './irq-lines.js';
import { MsiRoutes } from './msi-routes.js';
import { MmioBus, PioBus } from '../pio.js';
import { GuestMemory, type MemRegion } from './memory.js';
import type { MemoryLayoutEntry } from './vcpu-control.js';

/** Views are made at most this long: V8 typed arrays stay well inside their limits. */
const VIEW_CHUNK = 1 << 30;

/**
 * Guest memory over the Machine's mappings. The views stay valid while the
 * Machine lives: it unmaps guest memory only after all vCPU workers exited.
 */
export function memoryFromLayout(layout: MemoryLayoutEntry[]): GuestMemory {
  const regions: MemRegion[] = [];
  for (const e of layout) {
    for (let off = 0; off < e.size; off += VIEW_CHUNK) {
      const len = Math.min(VIEW_CHUNK, e.size - off);
      const bytes = new Uint8Array(libc.view(e.hostAddr + BigInt(off), len));
      regions.push({ gpa: e.gpa + off, size: len, prot: e.prot, bytes });
    }
  }
  return new GuestMemory(regions);
}

/** The machine-wide tables every thread's host shares (structured-cloneable). */
export interface SharedHostTables {
  irqs: SharedArrayBuffer;
  irqAllocs: IrqSourceAlloc[];
  doorbells: SharedArrayBuffer;
  doorbellAllocs: DoorbellAlloc[];
  msi: SharedArrayBuffer;
}

export function createHostTables(): SharedHostTables {
  return {
    irqs: SharedIrqLines.createBuffer(),
    irqAllocs: [],
    doorbells: SharedDoorbells.createBuffer(),
    doorbellAllocs: [],
    msi: MsiRoutes.createBuffer(),
  };
}

export class ThreadHost implements DeviceHost {
  readonly pio = new PioBus();
  readonly mmio = new MmioBus();
  readonly irqs: SharedIrqLines;
  readonly doorbells: SharedDoorbells;
  readonly msiRoutes: MsiRoutes;
  private readonly vm: VmFd;
  private readonly singletons = new Map<string, unknown>();

  constructor(
    readonly thread: 'main' | 'vcpu' | 'io',
    readonly vcpuId: number | undefined,
    vmFd: number,
    readonly mem: GuestMemory,
    readonly events: GuestEvents,
    tables: SharedHostTables,
  ) {
    this.vm = VmFd.fromRaw(vmFd);
    const vm = this.vm;
    const main = thread === 'main';
    this.irqs = new SharedIrqLines(tables.irqs, (gsi, level) => vm.irqLine(gsi, level), tables.irqAllocs, main);
    this.doorbells = new SharedDoorbells(tables.doorbells, vm, tables.doorbellAllocs, main, thread === 'io');
    this.msiRoutes = new MsiRoutes(tables.msi, vm);
  }

  /** The tables as allocated so far, for the workers (main thread, before start). */
  tables(): SharedHostTables {
    return {
      irqs: this.irqs.sab,
      irqAllocs: this.irqs.allocations,
      doorbells: this.doorbells.sab,
      doorbellAllocs: this.doorbells.allocations,
      msi: this.msiRoutes.sab,
    };
  }

  irqLine(gsi: number, owner: string): IrqLine {
    return this.irqs.source(gsi, owner);
  }

  msi(address: bigint, data: number): void {
    this.msiRoutes.signal(address, data);
  }

  doorbell(owner: string, index: number): Doorbell | undefined {
    return this.doorbells.doorbell(owner, index);
  }

  private readonly exitHooks: (() => void)[] = [];

  atThreadExit(fn: () => void): void {
    if (this.thread !== 'main') this.exitHooks.push(fn);
  }

  /** The worker is ending: run the devices' exit hooks (each at most once; failures are ignored). */
  runExitHooks(): void {
    for (const fn of this.exitHooks.splice(0)) {
      try {
        fn();
      } catch {
        // The thread is going away; nothing more can be done.
      }
    }
  }

  singleton<T>(key: string, create: () => T): T {
    if (!this.singletons.has(key)) this.singletons.set(key, create());
    return this.singletons.get(key) as T;
  }
}
