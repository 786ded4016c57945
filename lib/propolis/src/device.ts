// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// How one device is present on several threads.
//
// Exits are handled on the vCPU thread that took them (a cross-thread hop
// costs ~7 exits), so every vCPU worker holds its own instance of every
// device. The instances share their state through SharedArrayBuffers named
// in a `DeviceDescriptor`, and serialise access with a `SharedMutex` in that
// state. The main thread holds one more instance for the host side: console
// input, lifecycle calls and state export/import.
//
// A descriptor is structured-cloneable (it travels in workerData); a worker
// re-creates the device with `import(descriptor.module)[descriptor.export]
// .attach(descriptor, host)`.

import type { Lifecycle } from './lifecycle.js';
import type { MmioBus, PioBus } from './pio.js';
import type { GuestMemory } from './vmm/memory.js';

/** One interrupt input of the platform (an ISA IRQ or a GSI of the IOAPIC). */
export interface IrqLine {
  readonly gsi: number;
  set(level: boolean): void;
  /** An edge: assert then deassert. */
  pulse(): void;
}

/** Requests a guest makes of the whole machine (through a device or a vCPU). */
export interface GuestEvents {
  /** The guest powered off or asked to exit; `status` is the exit status it asked for, if any. */
  halt(reason: string, status?: number): void;
  reset(reason: string): void;
}

/**
 * Where a guest doorbell write lands: a port or a physical address, the
 * access size drivers use and, if set, the only value that counts.
 */
export interface DoorbellBinding {
  space: 'io' | 'mmio';
  addr: number;
  size: 1 | 2 | 4 | 8;
  datamatch?: number;
}

/**
 * A doorbell the kernel rings for the device (KVM_IOEVENTFD): guest writes
 * matching its bindings signal an eventfd instead of exiting to a vCPU
 * thread, and the machine's I/O thread runs the handler. Each device
 * instance sees the same doorbell (by owner and index) on every thread.
 */
export interface Doorbell {
  /**
   * Make guest writes matching `bindings` ring this doorbell (an empty list
   * stops it). Any thread; cheap when nothing changed. A binding the kernel
   * refuses (another doorbell holds that address) is left out: those writes
   * exit as before. Returns how many bindings are in force.
   */
  bind(bindings: readonly DoorbellBinding[]): number;
  /** On the I/O thread: run `fn` when the doorbell rings. On other threads: ignored. */
  serve(fn: () => void): void;
}

/** What a device instance is given on the thread where it lives. */
export interface DeviceHost {
  readonly thread: 'main' | 'vcpu' | 'io';
  readonly vcpuId: number | undefined;
  readonly pio: PioBus;
  readonly mmio: MmioBus;
  readonly mem: GuestMemory;
  readonly events: GuestEvents;
  /**
   * One source on a platform IRQ line (GSI 0–23). Lines are wired-OR of
   * their sources; `owner` (the device name, plus a suffix if a device has
   * several sources on one line) identifies the source on every thread.
   */
  irqLine(gsi: number, owner: string): IrqLine;
  /** Deliver a message-signalled interrupt (MSI/MSI-X) as the guest programmed it. */
  msi(address: bigint, data: number): void;
  /**
   * A per-thread singleton shared by the devices of this thread (e.g. the
   * PCI topology), created on first use. Not shared across threads.
   */
  singleton<T>(key: string, create: () => T): T;
  /**
   * Doorbell `index` of `owner` (see Doorbell), allocated on the main
   * thread as the device attaches there. Undefined when the host has no I/O
   * thread (test hosts): the device then handles doorbell writes as exits.
   */
  doorbell?(owner: string, index: number): Doorbell | undefined;
  /**
   * Run `fn` when this thread's device instances are discarded (a worker
   * thread ending: files it opened are closed here). Not called on the
   * main thread, whose instances end with `halt()`.
   */
  atThreadExit?(fn: () => void): void;
}

export interface DeviceDescriptor {
  /** Module URL exporting the device class. */
  readonly module: string;
  /** Name of the class export; it has a static `attach(desc, host)`. */
  readonly export: string;
  /** Device key, e.g. `com1`. */
  readonly name: string;
  /** Shared buffers and parameters, as the class defines them. */
  readonly shared: unknown;
}

export interface DeviceClass<T> {
  attach(desc: DeviceDescriptor, host: DeviceHost): T;
}

/** A device the machine manages: present on every thread, with a lifecycle. */
export interface MachineDevice extends Lifecycle {
  readonly name: string;
  readonly descriptor: DeviceDescriptor;
}

export class DeviceAttachError extends Error {
  readonly code = 'DEVICE_ATTACH';
}

/** Re-create a device from its descriptor on this thread. */
export async function attachFromDescriptor(desc: DeviceDescriptor, host: DeviceHost): Promise<unknown> {
  const mod = (await import(desc.module)) as Record<string, unknown>;
  const cls = mod[desc.export] as Partial<DeviceClass<unknown>> | undefined;
  if (typeof cls?.attach !== 'function') {
    throw new DeviceAttachError(`device ${desc.name}: ${desc.module} has no attachable export ${desc.export}`);
  }
  return cls.attach(desc, host);
}
