// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// `VmConfig`: what a test asks for — vCPUs, memory, firmware, the guest,
// disks, boot order, CPUID — as the original PHD's builder, turned into an
// instance spec (`toSpec`) once the disks exist on the host (disks.ts).
//
// Defaults follow the original: 2 vCPUs, 512 MiB, and the default guest
// artifact as the disk `boot-disk` (NVMe over a file backend at PCI
// 0.4.0) with boot order [boot-disk]. A guest artifact that is a ROM (the
// test OS's `testos-rom`) becomes the bootrom instead, with no boot disk.
// The spec always has COM1–COM4, as the original's does; disks are keyed
// by their names, their backends by `<name>-backend`, and an NVMe disk's
// serial number is its name, zero-padded to 20 bytes.
//
// Threading: main thread; plain data.

import type { Component, Cpuid, GuestHypervisorInterface, InstanceSpec } from '../../../lib/api-types/src/index.js';
import type { ArtifactStore, GuestArtifact } from './artifacts.js';
import { PhdConfigError } from './errors.js';

export type DiskInterface = 'virtio' | 'nvme';

/** Where a disk's bytes live on the host side. */
export type DiskBackend = { type: 'file'; readonly?: boolean } | { type: 'in-memory'; readonly: boolean };

/** What a disk holds when the VM starts. */
export type DiskSource =
  /** A copy of a guest artifact's disk image. */
  | { type: 'artifact'; name: string }
  /** Zeros. */
  | { type: 'blank'; bytes: number }
  /** Given contents (`label` names them in errors). */
  | { type: 'bytes'; data: Uint8Array; label: string };

export const DiskSource = {
  artifact: (name: string): DiskSource => ({ type: 'artifact', name }),
  blank: (bytes: number): DiskSource => ({ type: 'blank', bytes }),
  bytes: (data: Uint8Array, label: string): DiskSource => ({ type: 'bytes', data, label }),
};

export const DiskBackend = {
  file: (readonly = false): DiskBackend => ({ type: 'file', readonly }),
  inMemory: (readonly: boolean): DiskBackend => ({ type: 'in-memory', readonly }),
};

export interface DiskRequest {
  name: string;
  source: DiskSource;
  iface: DiskInterface;
  backend: DiskBackend;
  /** PCI device number on bus 0 (function 0). */
  pciDevice: number;
}

/** A disk as it exists on the host: a file, or contents carried in the spec. */
export type DiskMaterial =
  { type: 'file'; path: string; readonly: boolean } | { type: 'blob'; base64: string; readonly: boolean };

export const BOOT_DISK = 'boot-disk';
export const BOOT_DISK_PCI_DEVICE = 4;

export interface VmDefaults {
  cpus: number;
  memoryMib: number;
  /** The bootrom artifact used when the guest is not itself the ROM. */
  bootrom: string;
  /** The guest artifact. */
  guest: string;
  /** The interface of the default boot disk. */
  bootDiskInterface: DiskInterface;
}

export class VmConfig {
  private cpuCount: number;
  private memMib: number;
  private bootromName: string;
  private guestName: string;
  private readonly disks: DiskRequest[] = [];
  private order: string[] | undefined;
  private cpuidSpec: Cpuid | undefined;
  private hvInterface: GuestHypervisorInterface | undefined;
  private readonly defaultBootrom: string;

  constructor(
    private vmName: string,
    defaults: VmDefaults,
    private readonly artifacts: ArtifactStore,
  ) {
    this.cpuCount = defaults.cpus;
    this.memMib = defaults.memoryMib;
    this.bootromName = this.defaultBootrom = defaults.bootrom;
    this.guestName = defaults.guest;
    const guest = artifacts.guest(defaults.guest);
    if (guest.boot === 'rom') {
      this.bootromName = guest.name;
    } else if (guest.boot === 'disk') {
      this.bootDisk(guest.name, defaults.bootDiskInterface, DiskBackend.file(), BOOT_DISK_PCI_DEVICE);
    }
  }

  // ---- the original's builder methods ----

  named(name: string): this {
    this.vmName = name;
    return this;
  }

  cpus(n: number): this {
    if (!Number.isInteger(n) || n < 1 || n > 32) throw new PhdConfigError(`cpus ${n}: must be 1..32`);
    this.cpuCount = n;
    return this;
  }

  memoryMib(n: number): this {
    if (!Number.isInteger(n) || n < 1) throw new PhdConfigError(`memory ${n} MiB: must be a positive integer`);
    this.memMib = n;
    return this;
  }

  /** The firmware to boot (a bootrom artifact, or a guest that boots as a ROM). */
  bootrom(artifact: string): this {
    const a = this.artifacts.get(artifact);
    if (a.kind === 'guest' && a.boot !== 'rom') {
      throw new PhdConfigError(`artifact "${artifact}" is not a ROM (it boots as a ${a.boot})`);
    }
    this.bootromName = artifact;
    if (a.kind === 'guest') {
      // The ROM is the guest: no boot disk.
      this.guestName = artifact;
      this.removeDisk(BOOT_DISK);
      this.order = undefined;
    }
    return this;
  }

  /** The CPUID values the guest sees (the original fills in the host's vendor; give it explicitly). */
  cpuid(cpuid: Cpuid): this {
    this.cpuidSpec = cpuid;
    return this;
  }

  guestHvInterface(hv: GuestHypervisorInterface): this {
    this.hvInterface = hv;
    return this;
  }

  /** The boot order, by disk name. */
  bootOrder(names: string[]): this {
    this.order = [...names];
    return this;
  }

  clearBootOrder(): this {
    this.order = undefined;
    return this;
  }

  /**
   * The guest's boot disk: `artifact` (a guest disk image) as `boot-disk`,
   * first in the boot order. The guest OS is the artifact's.
   */
  bootDisk(artifact: string, iface: DiskInterface, backend: DiskBackend, pciDevice = BOOT_DISK_PCI_DEVICE): this {
    const a = this.artifacts.guest(artifact);
    if (a.boot !== 'disk')
      throw new PhdConfigError(`artifact "${artifact}" is not a disk image (it boots as a ${a.boot})`);
    this.removeDisk(BOOT_DISK);
    this.disks.unshift({ name: BOOT_DISK, source: DiskSource.artifact(artifact), iface, backend, pciDevice });
    this.guestName = artifact;
    if (this.artifacts.get(this.bootromName).kind === 'guest') this.bootromName = this.defaultBootrom;
    this.order = [BOOT_DISK];
    return this;
  }

  /**
   * The guest, whichever way it boots: a ROM becomes the bootrom, a disk
   * image the boot disk (NVMe, file backend), a kernel is booted directly.
   */
  guest(artifact: string, iface: DiskInterface = 'nvme'): this {
    const a = this.artifacts.guest(artifact);
    if (a.boot === 'rom') return this.bootrom(artifact);
    if (a.boot === 'disk') return this.bootDisk(artifact, iface, DiskBackend.file());
    this.guestName = artifact;
    this.removeDisk(BOOT_DISK);
    this.order = undefined;
    if (this.artifacts.get(this.bootromName).kind === 'guest') this.bootromName = this.defaultBootrom;
    return this;
  }

  /** Another disk. */
  dataDisk(name: string, source: DiskSource, iface: DiskInterface, backend: DiskBackend, pciDevice: number): this {
    if (this.disks.some((d) => d.name === name)) throw new PhdConfigError(`disk "${name}" already exists`);
    this.disks.push({ name, source, iface, backend, pciDevice });
    return this;
  }

  removeDisk(name: string): this {
    const i = this.disks.findIndex((d) => d.name === name);
    if (i >= 0) this.disks.splice(i, 1);
    return this;
  }

  // ---- reading it back ----

  get name(): string {
    return this.vmName;
  }

  get bootromArtifact(): string {
    return this.bootromName;
  }

  get guestArtifact(): GuestArtifact {
    return this.artifacts.guest(this.guestName);
  }

  get diskRequests(): readonly DiskRequest[] {
    return this.disks;
  }

  /** The instance spec, given each disk's host-side material (by disk name). */
  toSpec(material: ReadonlyMap<string, DiskMaterial>): InstanceSpec {
    const components: Record<string, Component> = {};
    for (const num of ['com1', 'com2', 'com3', 'com4'] as const) {
      components[num] = { type: 'serial_port', component: { num } };
    }
    const paths = new Set<number>();
    for (const d of this.disks) {
      if (paths.has(d.pciDevice)) throw new PhdConfigError(`two disks at PCI device ${d.pciDevice}`);
      paths.add(d.pciDevice);
      const m = material.get(d.name);
      if (!m) throw new PhdConfigError(`disk "${d.name}" has not been created`);
      const backendId = `${d.name}-backend`;
      const pci_path = { bus: 0, device: d.pciDevice, function: 0 };
      components[d.name] =
        d.iface === 'virtio'
          ? { type: 'virtio_disk', component: { backend_id: backendId, pci_path } }
          : { type: 'nvme_disk', component: { backend_id: backendId, pci_path, serial_number: nvmeSerial(d.name) } };
      components[backendId] =
        m.type === 'file'
          ? { type: 'file_storage_backend', component: { path: m.path, readonly: m.readonly, block_size: 512 } }
          : { type: 'blob_storage_backend', component: { base64: m.base64, readonly: m.readonly } };
    }
    if (this.order) {
      for (const n of this.order) {
        if (!this.disks.some((d) => d.name === n))
          throw new PhdConfigError(`boot order names "${n}", which is no disk`);
      }
      components['boot-settings'] = { type: 'boot_settings', component: { order: this.order.map((id) => ({ id })) } };
    }
    return {
      board: {
        cpus: this.cpuCount,
        memory_mb: this.memMib,
        chipset: { type: 'i440_fx', value: { enable_pcie: false } },
        ...(this.cpuidSpec ? { cpuid: this.cpuidSpec } : {}),
        ...(this.hvInterface ? { guest_hv_interface: this.hvInterface } : {}),
      },
      components,
    };
  }
}

/** An NVMe serial number from a disk name: its bytes, zero-padded (or cut) to 20. */
export function nvmeSerial(name: string): number[] {
  const bytes = [...new TextEncoder().encode(name)].slice(0, 20);
  while (bytes.length < 20) bytes.push(0);
  return bytes;
}
