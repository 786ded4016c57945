// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PC platform: one Machine dressed as the seed's i440FX/PIIX PC, with
// the devices every instance has (Propolis's initializer) and the firmware
// interface (fw_cfg carrying e820, boot order, ACPI and SMBIOS tables).
//
// Both propolis-standalone and (later) propolis-server build their VMs
// here, so the guest sees the same machine from either.
//
// Threading: main thread; devices are added before `start`.

import { randomUUID } from 'node:crypto';
import type { CpuidEntry } from '../../../kvm/src/index.js';
import { buildAcpi } from '../firmware/acpi/tables.js';
import {
  BOOTROM_VERSION_SERVER,
  BOOTROM_VERSION_STANDALONE,
  buildSmbios,
  RELEASE_DATE_SERVER,
  RELEASE_DATE_STANDALONE,
  type SmbiosCpu,
} from '../firmware/smbios/smbios.js';
import type { BackendDescriptor, DeviceInfo } from '../block/types.js';
import type { MachineDevice } from '../device.js';
import { describeChipset } from '../hw/chipset/chipset.js';
import type { PciNvme } from '../hw/nvme/pci-nvme.js';
import { PciPath, pciUnit } from '../hw/pci/path.js';
import type { PciVirtioBlock } from '../hw/virtio/block.js';
import type { PciVirtioNet } from '../hw/virtio/net.js';
import { LpcPs2Ctrl } from '../hw/ps2/lpc-ps2ctrl.js';
import { QemuDebugExit } from '../hw/qemu/debug-exit.js';
import { LpcRtc } from '../hw/rtc/lpc-rtc.js';
import { QemuDebugPort } from '../hw/qemu/debug-port.js';
import { E820Type, FwCfgBuilder, QemuFwCfg } from '../hw/qemu/fwcfg.js';
import { QemuPvpanic } from '../hw/qemu/pvpanic.js';
import { COM_PORTS, LpcUart, type ComPort } from '../hw/uart/lpc-uart.js';
import { GiB, LAYOUT, Machine, MiB } from '../vmm/machine.js';
import { addDirectBoot, type DirectBootConfig } from './direct-boot.js';

export interface PcConfig {
  name: string;
  cpus: number;
  memoryMiB: number;
  bootrom: Uint8Array;
  /** SMBIOS type 0 version string. */
  bootromVersion?: string;
  cpuid?: CpuidEntry[];
  kvmPath?: string;
  /** fw_cfg `bootorder` entries (OpenFirmware device paths). */
  bootOrder?: string[];
  pvpanic?: { enableIsa: boolean };
  /** QEMU isa-debug-exit devices (test guests). */
  debugExits?: { name: string; port: number; size: number }[];
  /** Serial console port SeaBIOS mirrors its screen to (`etc/sercon-port`); default COM1, `null` for none. */
  serialConsole?: number | null;
  /** Instance UUID (SMBIOS type 1); a random one when absent. */
  uuid?: string;
  /** SMBIOS type 1 fields, as the seed's API sets them. */
  smbios?: { manufacturer?: string; productName?: string; serialNumber?: string; version?: string | number };
  /** Use propolis-standalone's SMBIOS defaults (release date, bootrom version) instead of the server's. */
  standalone?: boolean;
  enablePcie?: boolean;
  /** Disks: virtio-block or NVMe functions on PCI, each over its own backend. */
  disks?: PcDisk[];
  /** NICs: virtio-net functions over Linux tap devices (the seed's `vnic`). */
  nics?: PcNic[];
  /**
   * Boot a Linux bzImage directly, as QEMU's -kernel/-initrd/-append (see
   * direct-boot.ts): the loader option ROM boots first, ahead of `bootOrder`.
   */
  directBoot?: DirectBootConfig;
}

export interface PcNic {
  name: string;
  pciPath: string;
  /** Tap device name; attached if it exists, else created. */
  vnic: string;
  mac?: string;
  rxQueueSize?: number;
  txQueueSize?: number;
}

export interface PcDisk {
  /** Device key (and the NVMe serial number, as the seed derives it). */
  name: string;
  driver: 'virtio' | 'nvme';
  /** `bus.device.function`. */
  pciPath: string;
  backend: BackendDescriptor;
  /** NVMe serial number (20 bytes, space-padded if shorter); default the device key, as the seed's TOML does. */
  serial?: string | Uint8Array;
}

/** CPU identification for SMBIOS type 4, from the CPUID the vCPUs see. */
function cpuInfo(cpuid: CpuidEntry[]): SmbiosCpu {
  const leaf = (fn: number): CpuidEntry | undefined => cpuid.find((e) => e.function === fn && e.index === 0);
  const regs = (e: CpuidEntry | undefined, order: ('eax' | 'ebx' | 'ecx' | 'edx')[]): Buffer => {
    const b = Buffer.alloc(4 * order.length);
    order.forEach((r, i) => b.writeUInt32LE(e ? e[r] >>> 0 : 0, 4 * i));
    return b;
  };
  const vendor = regs(leaf(0), ['ebx', 'edx', 'ecx']).toString('latin1');
  const eax1 = leaf(1)?.eax ?? 0;
  const baseFamily = (eax1 >> 8) & 0xf;
  const family = baseFamily === 0xf ? baseFamily + ((eax1 >> 20) & 0xff) : baseFamily;
  const model =
    baseFamily === 0x6 || baseFamily === 0xf ? (((eax1 >> 16) & 0xf) << 4) | ((eax1 >> 4) & 0xf) : (eax1 >> 4) & 0xf;
  const brand = [0x8000_0002, 0x8000_0003, 0x8000_0004]
    .map((fn) => regs(leaf(fn), ['eax', 'ebx', 'ecx', 'edx']).toString('latin1'))
    .join('')
    .replace(/\0+$/, '')
    .trim();
  return {
    vendor: vendor.replace(/\0/g, ''),
    family,
    model,
    stepping: eax1 & 0xf,
    brand: brand || 'Virtual CPU',
    cpuidEax1: eax1 >>> 0,
    cpuidEdx1: (leaf(1)?.edx ?? 0) >>> 0,
  };
}

const QEMU_DEBUG_PORT = 0x402;

/** Where every thread finds `openBackend` for a virtio disk's backend. */
const BLOCK_BACKEND_MODULE = new URL('../block/backend.js', import.meta.url).href;

interface Drivers {
  PciNvme?: typeof PciNvme;
  PciVirtioBlock?: typeof PciVirtioBlock;
  PciVirtioNet?: typeof PciVirtioNet;
  backendInfo?: (desc: BackendDescriptor) => DeviceInfo;
}

async function loadDrivers(config: PcConfig): Promise<Drivers> {
  const disks = config.disks ?? [];
  const out: Drivers = {};
  if (disks.some((d) => d.driver === 'nvme')) out.PciNvme = (await import('../hw/nvme/pci-nvme.js')).PciNvme;
  if (disks.some((d) => d.driver === 'virtio')) {
    out.PciVirtioBlock = (await import('../hw/virtio/block.js')).PciVirtioBlock;
    out.backendInfo = (await import('../block/backend.js')).backendInfo;
  }
  if ((config.nics ?? []).length > 0) out.PciVirtioNet = (await import('../hw/virtio/net.js')).PciVirtioNet;
  return out;
}

function need<T>(x: T | undefined, what: string): T {
  if (x === undefined) throw new Error(`${what} driver was not loaded`);
  return x;
}

export class PcConfigError extends Error {
  readonly code = 'PC_CONFIG';
}

export class PcPlatform {
  readonly com: Record<ComPort, LpcUart>;
  readonly rtc: LpcRtc;
  readonly ps2: LpcPs2Ctrl;
  readonly debugPort: QemuDebugPort;
  readonly fwcfg: QemuFwCfg;
  readonly pvpanic: QemuPvpanic | undefined;
  readonly disks: Map<string, MachineDevice>;
  readonly nics: Map<string, MachineDevice>;

  readonly uuid: string;

  private constructor(
    readonly machine: Machine,
    readonly config: PcConfig,
    drivers: Drivers,
  ) {
    const m = machine;
    this.uuid = config.uuid ?? randomUUID();
    // The order devices are added is the order every vCPU thread attaches
    // them; keep it fixed.
    // The chipset comes first: the host bridge installs the PCI topology and
    // BAR router every later PCI device attaches to. The FADT declares a
    // 32-bit PM timer (TMR_VAL_EXT), so the timer is 32 bits wide.
    for (const { cls, desc } of describeChipset({ enablePcie: config.enablePcie ?? false, pmTimerBits: 32 })) {
      m.addDevice(cls, desc);
    }
    const com = {} as Record<ComPort, LpcUart>;
    for (const c of Object.keys(COM_PORTS) as ComPort[]) com[c] = m.addDevice(LpcUart, LpcUart.describe(c));
    this.com = com;
    const { lowmem, highmem } = this.memory;
    this.rtc = m.addDevice(LpcRtc, LpcRtc.describe({ lowmem, highmem, cpus: config.cpus }));
    this.ps2 = m.addDevice(LpcPs2Ctrl, LpcPs2Ctrl.describe());
    this.debugPort = m.addDevice(QemuDebugPort, QemuDebugPort.describe({}));
    this.pvpanic = config.pvpanic?.enableIsa
      ? m.addDevice(QemuPvpanic, QemuPvpanic.describe({ enableIsa: true }))
      : undefined;
    for (const d of config.debugExits ?? []) m.addDevice(QemuDebugExit, QemuDebugExit.describe(d.name, d.port, d.size));
    this.disks = new Map();
    for (const d of config.disks ?? []) {
      if (d.driver === 'nvme') {
        const PciNvme = need(drivers.PciNvme, 'pci-nvme');
        this.disks.set(
          d.name,
          m.addDevice(
            PciNvme,
            PciNvme.describe({ name: d.name, pciPath: d.pciPath, serial: d.serial ?? d.name, backend: d.backend }),
          ),
        );
      } else {
        const backend = { module: BLOCK_BACKEND_MODULE, export: 'openBackend', descriptor: d.backend };
        const PciVirtioBlock = need(drivers.PciVirtioBlock, 'pci-virtio-block');
        const backendInfo = need(drivers.backendInfo, 'block backends');
        const desc = PciVirtioBlock.describe(d.name, {
          path: PciPath.parse(d.pciPath),
          backend,
          info: backendInfo(d.backend),
          serial: d.name.slice(0, 20),
        });
        this.disks.set(d.name, m.addDevice(PciVirtioBlock, desc));
      }
    }
    this.nics = new Map();
    for (const n of config.nics ?? []) {
      const PciVirtioNet = need(drivers.PciVirtioNet, 'pci-virtio-viona');
      const desc = PciVirtioNet.describe({
        name: n.name,
        pciPath: PciPath.parse(n.pciPath),
        tap: { name: n.vnic, mode: 'create-or-attach' },
        ...(n.mac === undefined ? {} : { mac: n.mac }),
        ...(n.rxQueueSize === undefined ? {} : { rxQueueSize: n.rxQueueSize }),
        ...(n.txQueueSize === undefined ? {} : { txQueueSize: n.txQueueSize }),
      });
      this.nics.set(n.name, m.addDevice(PciVirtioNet, desc));
    }
    this.fwcfg = m.addDevice(QemuFwCfg, QemuFwCfg.describe(this.firmwareConfig()));
  }

  /**
   * Create the VM and its devices (not yet running). Disk and NIC device
   * modules are loaded only when configured: importing them all costs tens
   * of milliseconds of start-up a VM without them should not pay.
   */
  static async create(config: PcConfig): Promise<PcPlatform> {
    const drivers = await loadDrivers(config);
    const machine = Machine.create({
      name: config.name,
      cpus: config.cpus,
      memoryMiB: config.memoryMiB,
      bootrom: config.bootrom,
      ...(config.kvmPath === undefined ? {} : { kvmPath: config.kvmPath }),
      ...(config.cpuid === undefined ? {} : { cpuid: config.cpuid }),
      // Firmware writes its debug log a byte at a time to the QEMU debug
      // port, which is write-only: let the kernel queue those writes.
      coalescedPio: [{ port: QEMU_DEBUG_PORT, size: 1 }],
    });
    try {
      return new PcPlatform(machine, config, drivers);
    } catch (e) {
      void machine.destroy();
      throw e;
    }
  }

  /** Guest RAM below the 3 GiB hole and above 4 GiB, in bytes. */
  get memory(): { lowmem: number; highmem: number } {
    const total = this.config.memoryMiB * MiB;
    const lowmem = Math.min(total, LAYOUT.lowmemTop);
    return { lowmem, highmem: total - lowmem };
  }

  /** The e820 map firmware hands to the OS: RAM, and the firmware/KVM ranges reserved. */
  e820(): { base: number; length: number; type: number }[] {
    const { lowmem, highmem } = this.memory;
    const map = [
      { base: 0, length: lowmem, type: E820Type.RAM },
      { base: LAYOUT.identityMapAddr, length: 4 * 4096, type: E820Type.RESERVED },
      { base: LAYOUT.romBase, length: LAYOUT.romSize, type: E820Type.RESERVED },
    ];
    if (highmem > 0) map.push({ base: 4 * GiB, length: highmem, type: E820Type.RAM });
    return map;
  }

  /**
   * fw_cfg `bootorder` entries for the configured boot order (device
   * names), as the seed writes them — NVMe namespaces by their OVMF-style
   * path, virtio disks as `scsi@…/disk@0,0` — except that the unit address
   * of function 0 is `dev`, not `dev,0`, so SeaBIOS matches it too.
   */
  private bootPaths(): string[] {
    const out: string[] = [];
    for (const name of this.config.bootOrder ?? []) {
      const d = (this.config.disks ?? []).find((x) => x.name === name);
      if (!d) throw new PcConfigError(`boot order names "${name}", which is not a disk`);
      const path = PciPath.parse(d.pciPath);
      if (path.bus !== 0) throw new PcConfigError(`boot disk "${name}" must be on PCI bus 0, not ${d.pciPath}`);
      // NVMe namespaces with the id OVMF needs (pci8086,5845), as the seed.
      out.push(
        d.driver === 'nvme'
          ? `/pci@i0cf8/pci8086,5845@${pciUnit(path)}/namespace@1,0`
          : `/pci@i0cf8/scsi@${pciUnit(path)}/disk@0,0`,
      );
    }
    return out;
  }

  private firmwareConfig(): FwCfgBuilder {
    const b = new FwCfgBuilder()
      .cpus(this.config.cpus, this.config.cpus)
      .ramSize(this.config.memoryMiB * MiB)
      .e820(this.e820());
    // As the seed: a `bootorder` file only with boot settings. (An empty
    // list ending in HALT would make SeaBIOS skip every disk.)
    const boot = this.bootPaths();
    const direct = this.config.directBoot;
    if (direct) {
      // As QEMU with -kernel: the loader ROM first. HALT only when the user chose a boot order too.
      b.bootOrder([addDirectBoot(b, direct, this.memory.lowmem), ...boot], { halt: boot.length > 0 });
    } else if (boot.length > 0) {
      b.bootOrder(boot, { halt: true });
    }
    const sercon = this.config.serialConsole === undefined ? COM_PORTS.com1.port : this.config.serialConsole;
    if (sercon !== null) b.serialConsole(sercon);
    const { lowmem, highmem } = this.memory;
    const acpi = buildAcpi({
      cpus: this.config.cpus,
      lowmemTop: lowmem,
      highmem,
      serialPorts: Object.keys(COM_PORTS) as ComPort[],
      enablePcie: this.config.enablePcie ?? false,
    });
    const romSize = Math.max(64 * 1024, Math.ceil(this.config.bootrom.byteLength / 65536) * 65536);
    const standalone = this.config.standalone ?? false;
    const smbios = buildSmbios({
      bootromVersion: this.config.bootromVersion ?? (standalone ? BOOTROM_VERSION_STANDALONE : BOOTROM_VERSION_SERVER),
      releaseDate: standalone ? RELEASE_DATE_STANDALONE : RELEASE_DATE_SERVER,
      romSize,
      system: { ...this.config.smbios, uuid: this.uuid },
      cpu: cpuInfo(this.machine.baseCpuid),
      cpus: this.config.cpus,
      memory: { lowmem, highmem },
    });
    for (const f of [...acpi.files, ...smbios.files]) b.file(f.name, f.bytes);
    return b;
  }
}
